// Copies the .sql migrations (and, later, the built dashboard) next to the compiled JavaScript.
import { cpSync } from 'node:fs';

cpSync('src/store/migrations', 'dist/store/migrations', { recursive: true });
