/** Every target `--systems` can name, in the order they are reported. */
import { baselineTarget } from './baseline.js';
import { bullmqTarget } from './bullmq.js';
import { dbosTargets } from './dbos.js';
import { graphileTargets } from './graphile.js';
import { restateTarget } from './restate.js';
import type { SystemTarget } from './system.js';
import { weftTarget } from './weft.js';

export const TARGETS: SystemTarget[] = [
  weftTarget('postgres'),
  weftTarget('pglite'),
  ...graphileTargets,
  ...dbosTargets,
  restateTarget,
  bullmqTarget,
  baselineTarget('postgres'),
  baselineTarget('pglite'),
];
