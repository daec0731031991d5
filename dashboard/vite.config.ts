/**
 * The dashboard build: a static single-page app written into `dist/dashboard/`, which
 * `createApp` serves at `/` (src/server/dashboard-assets.ts). Relative to this file, so the
 * build works from any working directory (and from the browser test, into a temp folder).
 */
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  plugins: [react()],
  // No public/ folder: everything the page needs is imported, so it is hashed.
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    // One chunk for the graph library and layout, one for the app: the app changes more often.
    chunkSizeWarningLimit: 2000,
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [
            { name: 'graph', test: /node_modules[\\/](@xyflow|elkjs|d3-|classcat|zustand)/ },
            {
              name: 'react',
              test: /node_modules[\\/](react|react-dom|scheduler|@tanstack|wouter)/,
            },
          ],
        },
      },
    },
  },
  server: {
    // `npx vite --config dashboard/vite.config.ts` for hot reload against a running `weft dev`.
    proxy: { '/api': 'http://127.0.0.1:3700', '/hooks': 'http://127.0.0.1:3700' },
  },
});
