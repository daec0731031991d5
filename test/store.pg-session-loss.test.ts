/**
 * A PostgreSQL session of the executor terminated at any moment (pg_terminate_backend, a
 * restart, a proxy closing it) costs a failed statement, never the process. What crashed it: a
 * client the pool had just connected was handed to `transaction()` inside the socket's data
 * handler, after the pool had dropped its own error listener and before `transaction()` added
 * one, so a FATAL that arrived in the same read emitted 'error' with nobody listening (an
 * unhandled 'error' event ends a Node process). CI's crash-mid-step test lost a worker that way
 * under load. The child process (test/support/pg-cut-child.ts) runs transactions and queries on
 * 6 loops while its sessions are terminated every few ms, new ones included; before the fix it
 * died within seconds (3 of 3 runs), now it exits 0 and its executor works after the storm.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDatabase } from './support/databases.js';

const child = fileURLToPath(new URL('./support/pg-cut-child.ts', import.meta.url));

describe('PostgreSQL sessions terminated under load', () => {
  let db: { url: string; drop: () => Promise<void> };
  beforeAll(async () => {
    db = await createPgDatabase('cut');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('a session terminated as it connects or mid-transaction fails a statement, never the process', async () => {
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', child, db.url, '4000'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    expect(code, `the child process died:\n${stderr.slice(0, 3000)}`).toBe(0);
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as {
      ok: number;
      failed: number;
      after: number;
    };
    expect(result.failed, 'sessions were terminated while in use').toBeGreaterThan(0);
    expect(result.ok).toBeGreaterThan(0);
    expect(result.after).toBe(42);
  }, 30_000);
});
