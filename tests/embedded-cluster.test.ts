import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedCluster } from '../src/lib/server/db/embedded-cluster';

/** A cluster of its own (not the shared test cluster), because this test kills it. */
const root = mkdtempSync(join(tmpdir(), 'lifeboat-cluster-'));
chmodSync(root, 0o755);
const dataDir = join(root, 'data');
// Below the kernel's ephemeral range (32768+), where other tests' servers (listening on port 0) land.
const port = 20000 + Math.floor(Math.random() * 10000);
const clusters: EmbeddedCluster[] = [];

function cluster(): EmbeddedCluster {
  const c = new EmbeddedCluster({ dataDir, port, fsync: false });
  clusters.push(c);
  return c;
}

/** Every EmbeddedCluster object on this folder connects the same way: the unix socket in the folder. */
async function query<R extends pg.QueryResultRow>(sql: string): Promise<R[]> {
  const client = new pg.Client(new EmbeddedCluster({ dataDir, port }).connection('postgres'));
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

const postmasterPid = () => Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A killed process that nobody reaped yet is a zombie: it has no command line any more.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').length > 0;
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting until ${what}`);
}

afterAll(async () => {
  for (const c of clusters.reverse()) await c.stop().catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

describe('EmbeddedCluster', () => {
  it('creates a cluster on first start (UTF8, owned by the postgres user when run as root)', async () => {
    const c = cluster();
    await c.start();
    expect(existsSync(join(dataDir, 'PG_VERSION'))).toBe(true);
    const [row] = await query<{ encoding: string; user: string }>("SELECT pg_encoding_to_char(encoding) AS encoding, current_user AS user FROM pg_database WHERE datname = 'postgres'");
    expect(row).toEqual({ encoding: 'UTF8', user: 'postgres' });
    await query(`CREATE TABLE kept (note text); INSERT INTO kept VALUES ('written before the restart')`);
  });

  it('listens on no TCP port, only on its unix socket', async () => {
    const c = clusters[0];
    const [row] = await query<{ listen_addresses: string }>('SHOW listen_addresses');
    expect(row.listen_addresses).toBe('');
    const tcp = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: c.port });
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    });
    expect(tcp).toBe('ECONNREFUSED');
    expect(existsSync(join(c.socketDir, `.s.PGSQL.${c.port}`))).toBe(true);
  });

  it('a second start on the same folder attaches to the running server and never stops it', async () => {
    const other = cluster();
    await other.start();
    await other.stop();
    expect((await query<{ note: string }>('SELECT note FROM kept'))[0].note).toBe('written before the restart');
  });

  it('keeps the data across stop and start', async () => {
    const c = clusters[0];
    const pid = postmasterPid();
    await c.stop();
    expect(existsSync(join(dataDir, 'postmaster.pid'))).toBe(false);
    expect(isAlive(pid)).toBe(false);
    const again = cluster();
    await again.start();
    expect(await query<{ note: string }>('SELECT note FROM kept')).toEqual([{ note: 'written before the restart' }]);
  });

  it('comes back up after the postmaster was killed with SIGKILL (stale postmaster.pid)', async () => {
    const pid = postmasterPid();
    process.kill(pid, 'SIGKILL');
    await waitUntil(() => !isAlive(pid), 'the postmaster is gone');
    expect(existsSync(join(dataDir, 'postmaster.pid'))).toBe(true);

    const revived = cluster();
    await revived.start();
    expect(postmasterPid()).not.toBe(pid);
    expect(await query<{ note: string }>('SELECT note FROM kept')).toEqual([{ note: 'written before the restart' }]);
    await revived.stop();
    expect(existsSync(join(dataDir, 'postmaster.pid'))).toBe(false);
  });
});
