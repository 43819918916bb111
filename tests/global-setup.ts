import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { EmbeddedCluster } from '../src/lib/server/db/embedded-cluster';

/**
 * One real PostgreSQL cluster for the whole test run: initdb into a temporary folder,
 * fsync off, a random port, removed afterwards. Each test file makes its own databases.
 */
export default async function setup(project: TestProject) {
  const root = mkdtempSync(join(tmpdir(), 'lifeboat-test-pg-'));
  chmodSync(root, 0o755);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const cluster = new EmbeddedCluster({ dataDir: join(root, 'data'), port, fsync: false });
  await cluster.start();
  const connection = cluster.connection('postgres');
  project.provide('pg', { host: connection.host, port: connection.port, user: connection.user, dataDir: cluster.dataDir });
  return async () => {
    await cluster.stop();
    rmSync(root, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    pg: { host: string; port: number; user: string; dataDir: string };
  }
}
