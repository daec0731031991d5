/**
 * Which workflows a `weft dev` or `weft worker` process runs, and keeping them current.
 *
 * Where they come from, first match wins:
 * 1. `--workflows <path>` (repeatable): a module file, a directory (its top-level `.ts`, `.mts`,
 *    `.js`, `.mjs` modules, not `*.test.*`, `*.d.ts`, `_*` or dotfiles) or a glob (`src/**\/*.wf.ts`);
 * 2. `weft.config.ts` (or `.mts`, `.js`, `.mjs`) in the working directory, or `--config <file>`:
 *    `export default { workflows: [...] }` whose entries are such paths (relative to the config
 *    file) or `Workflow` objects the config imported itself;
 * 3. the examples bundled with Weft.
 * Every exported `Workflow` of a module counts (also inside an exported array). An optional
 * `sampleInputs` export (`{ [workflowId]: input }`) feeds the example that `weft dev` prints.
 *
 * Reloading (dev): every load is a new generation of fresh modules. A module that fails to load
 * (or a workflow that fails validation) is reported with its file and cause, and the workflows it
 * had before keep running; workflows no longer exported are unregistered. A worker (`strict`)
 * refuses to start instead.
 */
import { existsSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isWorkflow } from '../core/workflow.js';
import type { AnyWorkflow } from '../engine/registry.js';
import type { Engine } from '../engine/engine.js';
import type { Logger } from '../engine/logger.js';
import { displayPath } from './local-state.js';
import { expandEntries, GLOB_CHARS, globBase, MODULE_FILE } from './workflow-files.js';
import {
  GENERATION_PARAM,
  installModuleLoader,
  packageLayout,
  type ModuleLoader,
} from './module-loader.js';
import { CliError } from './output.js';

export type WorkflowSource =
  | { kind: 'paths'; entries: string[]; baseDir: string }
  | { kind: 'config'; file: string }
  | { kind: 'examples'; file: string };

export interface WeftConfig {
  /** Module files, directories or globs (relative to the config file), or `Workflow` objects. */
  workflows: string | ReadonlyArray<string | AnyWorkflow>;
}

const CONFIG_NAMES = ['weft.config.ts', 'weft.config.mts', 'weft.config.js', 'weft.config.mjs'];

/** Decide where workflows come from (see the file comment for the order). */
export function resolveWorkflowSource(options: {
  workflows?: string[];
  config?: string;
  cwd?: string;
}): WorkflowSource {
  const cwd = options.cwd ?? process.cwd();
  if (options.workflows && options.workflows.length > 0) {
    for (const entry of options.workflows) {
      if (!GLOB_CHARS.test(entry) && !existsSync(resolve(cwd, entry))) {
        throw new CliError(
          `--workflows ${entry}: no such file or directory (looked at ${resolve(cwd, entry)}). Pass a module file, a directory of modules or a glob.`,
        );
      }
    }
    return { kind: 'paths', entries: options.workflows, baseDir: cwd };
  }
  if (options.config !== undefined) {
    const file = resolve(cwd, options.config);
    if (!existsSync(file))
      throw new CliError(`--config ${options.config}: no such file (looked at ${file}).`);
    return { kind: 'config', file };
  }
  for (const name of CONFIG_NAMES) {
    const file = join(cwd, name);
    if (existsSync(file)) return { kind: 'config', file };
  }
  return { kind: 'examples', file: examplesEntry() };
}

/** The bundled examples' index module (TypeScript, shipped as source in the package). */
export function examplesEntry(): string {
  return fileURLToPath(new URL('index.ts', packageLayout().examplesDir));
}

export function describeSource(source: WorkflowSource): string {
  switch (source.kind) {
    case 'paths':
      return source.entries.join(', ');
    case 'config':
      return displayPath(source.file);
    case 'examples':
      return 'the bundled examples (pass --workflows <path> or add a weft.config.ts for your own)';
  }
}

interface FoundWorkflow {
  workflow: AnyWorkflow;
  file: string;
  exportName: string;
}

export interface ActiveWorkflow {
  id: string;
  version: number;
  file: string;
}

export interface LoadIssue {
  file: string;
  message: string;
}

export interface LoadReport {
  generation: number;
  active: ActiveWorkflow[];
  /** Registered as a new version in this load (first load: every new workflow). */
  changed: ActiveWorkflow[];
  removed: string[];
  issues: LoadIssue[];
}

type Registrar = Pick<Engine, 'register' | 'registry'>;

export class WorkflowLoader {
  private readonly modules: ModuleLoader;
  private generation = 0;
  /** The workflows each file exported at its last successful load. */
  private readonly lastGood = new Map<string, FoundWorkflow[]>();
  private readonly active = new Map<string, ActiveWorkflow>();
  private sampleInputsById: Record<string, unknown> = {};
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly watchedFiles = new Set<string>();
  private debounce: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private rerun = false;
  private closed = false;
  private watching = false;

  constructor(
    readonly source: WorkflowSource,
    private readonly engine: Registrar,
    private readonly logger: Logger,
    private readonly options: { strict: boolean },
  ) {
    this.modules = installModuleLoader();
    this.modules.onLocalFile((file) => this.noteFile(file));
  }

  /** The registered workflows, by id. */
  get workflows(): ActiveWorkflow[] {
    return [...this.active.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  get sampleInputs(): Readonly<Record<string, unknown>> {
    return this.sampleInputsById;
  }

  /**
   * Load (or reload) every module and bring the engine's registry in line. In strict mode any
   * issue throws before anything is registered.
   */
  async load(): Promise<LoadReport> {
    const generation = ++this.generation;
    const issues: LoadIssue[] = [];
    const found: FoundWorkflow[] = [];
    const failedFiles = new Set<string>();
    const sampleInputs: Record<string, unknown> = {};

    let entries: Array<string | AnyWorkflow>;
    let baseDir: string;
    if (this.source.kind === 'config') {
      const file = this.source.file;
      this.noteFile(file);
      try {
        const config = readConfig(await this.modules.importFresh(file, generation), file);
        entries = typeof config.workflows === 'string' ? [config.workflows] : [...config.workflows];
      } catch (error) {
        // Without a config there is nothing to compare with: keep everything as it is.
        const issue = { file, message: describeLoadError(error) };
        if (this.options.strict) throw new CliError(formatIssues([issue]));
        this.logIssue(issue, [...this.active.keys()]);
        return { generation, active: this.workflows, changed: [], removed: [], issues: [issue] };
      }
      baseDir = dirname(file);
      entries.forEach((entry, i) => {
        if (typeof entry !== 'string')
          found.push({ workflow: entry, file, exportName: `workflows[${i}]` });
      });
    } else if (this.source.kind === 'paths') {
      entries = this.source.entries;
      baseDir = this.source.baseDir;
    } else {
      entries = [this.source.file];
      baseDir = dirname(this.source.file);
    }

    const { files, missing } = expandEntries(
      entries.filter((e): e is string => typeof e === 'string'),
      baseDir,
    );
    for (const entry of missing)
      issues.push({
        file: resolve(baseDir, entry),
        message: `no such file or directory (from "${entry}")`,
      });
    for (const file of files) {
      this.noteFile(file);
      try {
        const namespace = await this.modules.importFresh(file, generation);
        const exported = workflowsOf(namespace, file);
        if (exported.length === 0) {
          issues.push({
            file,
            message:
              'exports no workflow: export the result of defineWorkflow(…) (named or default export, or an array of them)',
          });
        }
        found.push(...exported);
        this.lastGood.set(file, exported);
        const samples = namespace.sampleInputs;
        if (typeof samples === 'object' && samples !== null) Object.assign(sampleInputs, samples);
      } catch (error) {
        failedFiles.add(file);
        issues.push({ file, message: describeLoadError(error) });
        found.push(...(this.lastGood.get(file) ?? []));
      }
    }

    // One definition per id; the same object exported twice (named and in a list) is one.
    const byId = new Map<string, FoundWorkflow>();
    for (const f of found) {
      const seen = byId.get(f.workflow.id);
      if (!seen) byId.set(f.workflow.id, f);
      else if (seen.workflow !== f.workflow) {
        issues.push({
          file: f.file,
          message: `workflow id \`${f.workflow.id}\` is defined twice: export \`${seen.exportName}\` of ${displayPath(seen.file)} and export \`${f.exportName}\` of ${displayPath(f.file)}. Workflow ids are unique per environment; rename one (the first one is used).`,
        });
      }
    }
    if (this.options.strict && issues.length > 0) throw new CliError(formatIssues(issues));

    const changed: ActiveWorkflow[] = [];
    const next = new Map<string, ActiveWorkflow>();
    for (const [id, f] of byId) {
      try {
        const result = await this.engine.register(f.workflow);
        const entry = { id, version: result.version, file: f.file };
        next.set(id, entry);
        const before = this.active.get(id);
        if (!before || before.version !== result.version) changed.push(entry);
      } catch (error) {
        if (this.options.strict)
          throw new CliError(
            `Workflow \`${id}\` (${displayPath(f.file)}) cannot be registered: ${describeLoadError(error)}`,
          );
        const before = this.active.get(id);
        if (before) next.set(id, before);
        issues.push({
          file: f.file,
          message: `workflow \`${id}\` was not registered: ${describeLoadError(error)}${before ? ` Version ${before.version} keeps running.` : ''}`,
        });
      }
    }
    // A workflow whose file failed to load stays (its last good definition was re-registered above).
    const removed = [...this.active.keys()].filter((id) => !next.has(id));
    for (const id of removed) this.engine.registry.unregister(id);
    this.active.clear();
    for (const [id, entry] of next) this.active.set(id, entry);
    this.sampleInputsById = sampleInputs;

    for (const issue of issues) {
      const kept = failedFiles.has(issue.file)
        ? (this.lastGood.get(issue.file) ?? []).map((f) => f.workflow.id)
        : [];
      this.logIssue(issue, kept);
    }
    if (generation > 1) {
      for (const c of changed)
        this.logger.info(
          { file: displayPath(c.file) },
          `workflow \`${c.id}\` v${c.version} registered`,
        );
      for (const id of removed)
        this.logger.info(`workflow \`${id}\` removed: no module exports it any more`);
      if (changed.length === 0 && removed.length === 0 && issues.length === 0) {
        // A version hashes each step's own code; a change in a helper it imports keeps the
        // version, but the registry now holds the reloaded code, so new attempts run it.
        const list = this.workflows.map((w) => `${w.id} v${w.version}`).join(', ');
        this.logger.info(
          `reloaded: no workflow definition changed (${list}); new attempts run the reloaded code`,
        );
      }
    }
    return { generation, active: this.workflows, changed, removed, issues };
  }

  private logIssue(issue: LoadIssue, kept: string[]): void {
    const keeping =
      kept.length > 0
        ? ` (keeping the previous version of ${kept.map((id) => `\`${id}\``).join(', ')} running; save the file to retry)`
        : '';
    this.logger.error(
      `could not load workflows from ${displayPath(issue.file)}${keeping}: ${issue.message}`,
    );
  }

  /**
   * Reload when a watched file changes: the files loaded so far (modules and the local files
   * they import), the directories given, and the config. Changes are debounced and reloads never
   * overlap (a change during a reload schedules one more).
   */
  watch(): void {
    this.watching = true;
    for (const file of this.watchedFiles) this.watchDir(dirname(file));
    if (this.source.kind === 'paths') {
      for (const entry of this.source.entries) {
        const path = resolve(this.source.baseDir, entry);
        if (GLOB_CHARS.test(entry)) this.watchDir(globBase(path));
        else if (existsSync(path) && statSync(path).isDirectory()) this.watchDir(path);
      }
    }
  }

  private noteFile(file: string): void {
    if (this.watchedFiles.has(file)) return;
    this.watchedFiles.add(file);
    if (this.watching) this.watchDir(dirname(file));
  }

  private watchDir(dir: string): void {
    if (this.closed || this.watchers.has(dir) || dir.split(sep).includes('node_modules')) return;
    try {
      const watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || MODULE_FILE.test(name) || this.watchedFiles.has(join(dir, name)))
          this.schedule();
      });
      watcher.on('error', () => {
        watcher.close();
        this.watchers.delete(dir);
      });
      this.watchers.set(dir, watcher);
    } catch (error) {
      this.logger.warn(
        { err: error },
        `cannot watch ${displayPath(dir)}; changes there will not reload`,
      );
    }
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.reload(), 150);
  }

  private reload(): void {
    if (this.closed) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = this.load()
      .then(() => undefined)
      .catch((error: unknown) => this.logger.error({ err: error }, 'reloading workflows failed'))
      .finally(() => {
        this.running = undefined;
        if (this.rerun) {
          this.rerun = false;
          this.reload();
        }
      });
  }

  /** Stop watching; waits for a reload in progress. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounce);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    await this.running;
  }
}

function readConfig(namespace: Record<string, unknown>, file: string): WeftConfig {
  const config = (namespace.default ?? namespace.config) as Partial<WeftConfig> | undefined;
  const shape =
    'export default { workflows: ["./workflows"] } (paths, directories, globs or Workflow objects)';
  if (typeof config !== 'object' || config === null) {
    throw new CliError(`${displayPath(file)} has no default export; expected ${shape}.`);
  }
  const w = config.workflows;
  if (typeof w === 'string') return { workflows: w };
  if (!Array.isArray(w))
    throw new CliError(
      `${displayPath(file)}: \`workflows\` is missing or not a list; expected ${shape}.`,
    );
  (w as unknown[]).forEach((entry, i) => {
    if (typeof entry !== 'string' && !isWorkflow(entry)) {
      throw new CliError(
        `${displayPath(file)}: workflows[${i}] is ${describeValue(entry)}; expected a path or a Workflow (defineWorkflow(…)).`,
      );
    }
  });
  return { workflows: w as Array<string | AnyWorkflow> };
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object that is not a Workflow' : `a ${typeof value}`;
}

function workflowsOf(namespace: Record<string, unknown>, file: string): FoundWorkflow[] {
  const out: FoundWorkflow[] = [];
  for (const [name, value] of Object.entries(namespace)) {
    if (isWorkflow(value)) out.push({ workflow: value as AnyWorkflow, file, exportName: name });
    else if (Array.isArray(value)) {
      value.forEach((item, i) => {
        if (isWorkflow(item))
          out.push({ workflow: item as AnyWorkflow, file, exportName: `${name}[${i}]` });
      });
    }
  }
  return out;
}

/**
 * A load error as one readable paragraph: the cause with its location, without the reload
 * marker in file URLs, plus the fix for the usual mistakes.
 */
export function describeLoadError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const clean = (s: string) =>
    s.replace(new RegExp(`\\?${GENERATION_PARAM}=\\d+`, 'g'), '').replace(/file:\/\//g, '');
  const code = (error as NodeJS.ErrnoException).code;
  let message = clean(error.message).trim();
  if (error.name !== 'Error' && error.name !== 'CliError' && !message.startsWith(error.name))
    message = `${error.name}: ${message}`;
  const frame = error.stack
    ?.split('\n')
    .slice(1)
    .map((l) => l.trim())
    .find((l) => l.startsWith('at ') && !l.includes('node:') && !l.includes('/node_modules/'));
  if (frame && !(error instanceof CliError) && code === undefined) message += ` (${clean(frame)})`;
  if (
    code === 'ERR_PACKAGE_PATH_NOT_EXPORTED' ||
    code === 'ERR_REQUIRE_ESM' ||
    /require\(\) of ES Module/.test(message)
  ) {
    message +=
      ' Weft is an ES module: make the workflow file ESM ("type": "module" in its package.json, or name it .mts).';
  }
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND')
    message += ' Check the import path (in ESM, relative imports name the file, e.g. ./steps.js).';
  return message.replace(/\n+/g, '\n    ');
}

function formatIssues(issues: readonly LoadIssue[]): string {
  return `cannot load the workflows:\n${issues.map((i) => `  ${displayPath(i.file)}: ${i.message}`).join('\n')}`;
}
