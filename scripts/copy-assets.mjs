// Copies the .sql migrations and the SQL function files (src/store/sql: SQL as code, applied by
// the migrator) next to the compiled JavaScript. (The dashboard is built into dist/ by vite.)
import { cpSync } from 'node:fs';

cpSync('src/store/migrations', 'dist/store/migrations', { recursive: true });
cpSync('src/store/sql', 'dist/store/sql', { recursive: true });
