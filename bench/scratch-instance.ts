// A throwaway instance for the benchmarks: embedded cluster with fsync on, in a temporary
// folder, filled with demo rows (no files) until the database reaches the size asked for.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lifeboat } from '../src/lib/server/app';
import { loadConfig } from '../src/lib/server/config';
import { fillDemoLibrary, type DemoResult } from '../src/lib/server/demo/demo-library';

export const MiB = 1024 * 1024;
export const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
export const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Runs a command to its end (stdout dropped) and resolves with its time in ms; rejects with its stderr on a non-zero exit. */
export function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`${command} exited with ${code}: ${stderr}`))));
  });
}

/** The time fn takes in ms, and its result. */
export async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const result = await fn();
  return [performance.now() - started, result];
}

export interface ScratchInstance {
  root: string;
  env: NodeJS.ProcessEnv & { UPLOAD_LOCATION: string; DB_DATA_LOCATION: string };
  app: Lifeboat;
  serverVersion: string;
  fill: DemoResult;
  /** Stops the cluster and removes the folder; safe to call twice. */
  cleanup(): Promise<void>;
}

export async function startScratchInstance(name: string, targetBytes: number): Promise<ScratchInstance> {
  const root = mkdtempSync(join(tmpdir(), `lifeboat-bench-${name}-`));
  chmodSync(root, 0o755);
  const env = { ...process.env, UPLOAD_LOCATION: join(root, 'library'), DB_DATA_LOCATION: join(root, 'postgres') };
  for (const key of ['DB_URL', 'DB_HOSTNAME'] as const) delete env[key];
  mkdirSync(env.UPLOAD_LOCATION);
  let app: Lifeboat | null = null;
  const cleanup = async () => {
    await app?.shutdown().catch(() => undefined);
    app = null;
    rmSync(root, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    app = await Lifeboat.start(loadConfig(env), { fsync: true, log: () => undefined });
    const serverVersion = await app.db.serverVersion();
    console.log(`Scratch instance in ${root} (PostgreSQL ${serverVersion}, fsync on). Filling to ${mib(targetBytes)}…`);
    const fill = await fillDemoLibrary(app, {
      users: 10,
      assets: 50_000_000,
      files: 'none',
      untilDatabaseBytes: targetBytes,
      onProgress: (p) => p.phase === 'assets' && process.stdout.write(`\r  ${p.assetsDone.toLocaleString()} assets, ${mib(p.databaseBytes)}, ${secs(p.elapsedMs)}   `),
    });
    console.log(`\n  ${fill.totals.assets.toLocaleString()} assets, ${fill.totals.albumAssets.toLocaleString()} album entries, database ${mib(fill.databaseBytes)} (filled in ${secs(fill.elapsedMs)})`);
    return { root, env, app, serverVersion, fill, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
