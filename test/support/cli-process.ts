/**
 * Running the `weft` CLI as a child process, from source (through tsx), the way a user runs it:
 * arguments, environment, stdout/stderr and exit status. Long-running commands (`dev`, `worker`)
 * are started with `startCli` and always stopped in a finally (SIGTERM, then SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI_MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cliEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  // The tests' own WEFT_* / DATABASE_URL settings must not leak into the child unless given.
  const base = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith('WEFT_') && k !== 'DATABASE_URL' && k !== 'RUN_OPS_DATABASE_URL',
    ),
  );
  return { ...base, NO_COLOR: '1', ...env };
}

/** Run a command to completion (bounded by `timeoutMs`; the child is killed past it). */
export function runCli(
  args: readonly string[],
  options: {
    cwd: string;
    env?: Record<string, string | undefined>;
    timeoutMs?: number;
    input?: string;
  },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI_MAIN, ...args], {
      cwd: options.cwd,
      env: cliEnv(options.env ?? {}),
      stdio: 'pipe',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `weft ${args.join(' ')} did not finish in ${options.timeoutMs ?? 30_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolve when stdout or stderr (whichever is given) matches, reject on exit or timeout. */
  waitFor(
    stream: 'stdout' | 'stderr',
    pattern: RegExp,
    timeoutMs?: number,
  ): Promise<RegExpMatchArray>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null if killed). */
  stop(graceMs?: number): Promise<number | null>;
}

/** Start a long-running command (`dev`, `worker`). */
export function startCli(
  args: readonly string[],
  options: { cwd: string; env?: Record<string, string | undefined> },
): CliProcess {
  const child = spawn(process.execPath, ['--import', TSX, CLI_MAIN, ...args], {
    cwd: options.cwd,
    env: cliEnv(options.env ?? {}),
    stdio: 'pipe',
  });
  return watchProcess(child, `weft ${args.join(' ')}`);
}

/** Output capture, waiting and stopping for any child process (also used by the package test). */
export function watchProcess(child: ChildProcess, name: string): CliProcess {
  const out = { stdout: '', stderr: '' };
  const listeners = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => {
    out.stdout += d.toString();
    for (const l of listeners) l();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out.stderr += d.toString();
    for (const l of listeners) l();
  });
  const exited = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    child.on('exit', (code) => {
      for (const l of listeners) l();
      resolve(code);
    });
  });
  return {
    child,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    waitFor(stream, pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = out[stream].match(pattern);
          if (match) return done(() => resolve(match));
          if (child.exitCode !== null || child.signalCode !== null) {
            done(() =>
              reject(
                new Error(
                  `${name} exited (${child.exitCode ?? child.signalCode}) before ${stream} matched ${pattern}\nstdout: ${out.stdout}\nstderr: ${out.stderr}`,
                ),
              ),
            );
          }
        };
        const timer = setTimeout(
          () =>
            done(() =>
              reject(
                new Error(
                  `${name}: ${stream} did not match ${pattern} within ${timeoutMs} ms\nstdout: ${out.stdout}\nstderr: ${out.stderr}`,
                ),
              ),
            ),
          timeoutMs,
        );
        const done = (fn: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          fn();
        };
        listeners.add(check);
        check();
      });
    },
    async stop(graceMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const code = await exited;
        clearTimeout(timer);
        return code;
      }
      return exited;
    },
  };
}
