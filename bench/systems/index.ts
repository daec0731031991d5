/** Every target `--systems` can name, in the order they are reported. */
import { baselineTarget } from './baseline.js';
import { dbosTargets } from './dbos.js';
import { graphileTargets } from './graphile.js';
import type { SystemTarget } from './system.js';
import { weftTarget } from './weft.js';

export const TARGETS: SystemTarget[] = [
  weftTarget('postgres'),
  weftTarget('pglite'),
  ...graphileTargets,
  ...dbosTargets,
  baselineTarget('postgres'),
  baselineTarget('pglite'),
];
