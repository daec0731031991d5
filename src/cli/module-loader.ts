/**
 * Importing the user's workflow modules, TypeScript included, fresh on every reload.
 *
 * tsx is registered once for the process (it compiles `.ts` on import). On top of it, one small
 * resolve hook of ours does three things:
 * - **One copy of Weft.** `import … from 'weft'` in a loaded module resolves to the very entry
 *   this CLI runs from, so `Workflow`, `TerminalError` and friends are the engine's own classes
 *   (a second copy would make `instanceof TerminalError` false and retry a terminal failure).
 *   The bundled examples import `../src/index.js` (the repository layout, so the repository
 *   type-checks them without a build); that import is sent to the same entry, which is how they
 *   also run from the published package, where only `dist/` exists.
 * - **Fresh user code, shared libraries.** A reload imports `file?weft-gen=N`; the hook carries
 *   `weft-gen=N` to every local file that module imports, so helpers are re-evaluated too, while
 *   `node_modules` and Weft's own files keep their one instance. (Rejected: tsx's `tsImport`
 *   namespaces, which also re-instantiate Weft's own files when they are not under
 *   node_modules — the repository and a linked checkout.)
 * - **Knowing what to watch.** Every local file it tags is reported back over a MessagePort.
 * - **Workflow TypeScript is ESM.** A `.ts` file in a package without `"type": "module"` would be
 *   compiled to CommonJS, whose `require('weft')` neither reaches this hook nor matches Weft's
 *   exports (Weft is ESM-only); such files are loaded as ES modules instead.
 *
 * ESM keeps every generation in its module map; for a dev server that reloads on save this is
 * a little memory per save, released when the process exits.
 */
import { register } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { CliError } from './output.js';

export const GENERATION_PARAM = 'weft-gen';

// Runs in Node's loader thread: plain JavaScript, no imports.
const HOOKS_SOURCE = `
let target, port, ownCode, examples;
export function initialize(data) {
  ({ target, port, ownCode, examples } = data);
}
function generationOf(url) {
  const q = url ? url.indexOf('?') : -1;
  return q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get(${JSON.stringify(GENERATION_PARAM)});
}
export async function resolve(specifier, context, next) {
  const parent = context.parentURL;
  if (specifier === 'weft' || (parent && parent.startsWith(examples) && /^\\.\\.\\/src\\/index\\.(js|ts)$/.test(specifier))) {
    return next(target, context);
  }
  const resolved = await next(specifier, context);
  const url = resolved.url;
  const own = generationOf(url);
  const generation = own ?? generationOf(parent);
  if (generation === null || !url.startsWith('file:') || url.includes('/node_modules/') || ownCode.some((p) => url.startsWith(p))) {
    return resolved;
  }
  const path = url.split('?')[0];
  const format = /\\.m?ts$/.test(path) && (resolved.format === 'commonjs' || resolved.format === 'commonjs-typescript') ? 'module-typescript' : resolved.format;
  if (own !== null) return { ...resolved, format };
  const tagged = new URL(url);
  tagged.searchParams.set(${JSON.stringify(GENERATION_PARAM)}, generation);
  port.postMessage(path);
  return { ...resolved, url: tagged.href, format };
}
`;

export interface ModuleLoader {
  /** Import a module as generation `generation`: its local imports are evaluated anew as well. */
  importFresh(file: string, generation: number): Promise<Record<string, unknown>>;
  /** Called with the path of every local file a fresh import loaded. */
  onLocalFile(listener: (file: string) => void): void;
}

let installed: ModuleLoader | undefined;

/** The root of this package (the folder holding `src/` or `dist/`) and the public entry in use. */
export function packageLayout(): { root: URL; entry: URL; examplesDir: URL } {
  const here = import.meta.url;
  const root = new URL('../../', here);
  const entry = new URL(here.endsWith('.ts') ? '../index.ts' : '../index.js', here);
  return { root, entry, examplesDir: new URL('examples/', root) };
}

/**
 * tsx, when installed. It is an optional dependency (installed by default): a project that ships
 * its workflows compiled to JavaScript can leave it, and esbuild under it, out.
 */
const tsx = await import('tsx/esm/api').catch((error: NodeJS.ErrnoException) => {
  if (error.code === 'ERR_MODULE_NOT_FOUND' && error.message.includes("'tsx'")) return undefined;
  throw error;
});

const TYPESCRIPT_FILE = /\.(?:[cm]?ts|tsx)$/;

export function installModuleLoader(): ModuleLoader {
  if (installed) return installed;
  tsx?.register();
  const { root, entry, examplesDir } = packageLayout();
  const listeners: Array<(file: string) => void> = [];
  const { port1, port2 } = new MessageChannel();
  port1.on('message', (url: string) => {
    const file = fileURLToPath(url);
    for (const listener of listeners) listener(file);
  });
  port1.unref();
  register(`data:text/javascript,${encodeURIComponent(HOOKS_SOURCE)}`, {
    data: {
      target: entry.href,
      port: port2,
      ownCode: [new URL('src/', root).href, new URL('dist/', root).href],
      examples: examplesDir.href,
    },
    transferList: [port2],
  });
  installed = {
    async importFresh(file, generation) {
      if (!tsx && TYPESCRIPT_FILE.test(file))
        throw new CliError(
          `${file} is TypeScript, and loading TypeScript needs the tsx package, which is not installed (it is an optional dependency of weft, left out of this install). Install it next to weft (npm install tsx), or compile your workflows to JavaScript and point --workflows at the .js files.`,
        );
      const url = pathToFileURL(file);
      url.searchParams.set(GENERATION_PARAM, String(generation));
      return (await import(url.href)) as Record<string, unknown>;
    },
    onLocalFile(listener) {
      listeners.push(listener);
    },
  };
  return installed;
}
