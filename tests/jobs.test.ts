import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { clientToolsFor } from '../src/lib/server/db/pg-binaries';
import { setInstance } from '../src/lib/server/instance';
import { DumpRepository } from '../src/lib/server/repositories/dump.repository';
import { ServiceError } from '../src/lib/server/errors';
import { JobService, type LastRun } from '../src/lib/server/services/job.service';
import { routineBackupName } from '../src/lib/shared/backup-name';
import type { QueueStatus } from '../src/lib/shared/types';
import { GET as eventsGET } from '../src/routes/api/jobs/events/+server';
import { seedLibrary } from './helpers/backup-seed';
import { connectionFor, startInstance, type TestInstance } from './helpers/pg';

let instance: TestInstance;
const folder = () => instance.app.backups.backupsFolder;
const dumps = () => readdirSync(folder()).filter((name) => name.endsWith('.sql.gz'));
const tmps = () => readdirSync(folder()).filter((name) => name.endsWith('.tmp'));
const clearBackups = () => {
  for (const name of readdirSync(folder())) if (name !== '.immich') rmSync(join(folder(), name));
};

/** A JobService over the app's parts with its log captured (the app's own logs nowhere in tests). */
function jobServiceFor(lines: string[]) {
  const { app } = instance;
  return new JobService({
    backups: app.backups,
    lock: app.lock,
    systemConfig: app.systemConfig,
    maintenance: app.maintenance,
    storage: app.storageRepository,
    stateDir: join(instance.uploadLocation, '.lifeboat'),
    log: (line) => lines.push(line),
    logError: (line) => lines.push(`ERROR ${line}`),
  });
}

async function until<T>(check: () => T | Promise<T>, what: string, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Holds an ACCESS EXCLUSIVE lock on a table, so pg_dump blocks on it until released. */
async function blockPgDump(database: string): Promise<{ waiting: () => Promise<boolean>; release: () => Promise<void> }> {
  const client = new pg.Client(connectionFor(database));
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE assets IN ACCESS EXCLUSIVE MODE');
  return {
    // Asked from another session: pg_stat_activity is a snapshot fixed for the length of a transaction.
    waiting: async () => {
      const { rowCount } = await instance.app.db.query(`SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pg_dump' AND wait_event_type = 'Lock'`, [database]);
      return (rowCount ?? 0) > 0;
    },
    release: async () => {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end();
    },
  };
}

beforeAll(async () => {
  instance = await startInstance();
  await instance.app.db.withClient((client) => seedLibrary(client, { users: 2, assetsPerUser: 10 }));
  setInstance(instance.app);
});
afterAll(async () => {
  await instance?.close();
});
afterEach(async () => {
  if (instance.app.maintenance.isActive()) await instance.app.maintenance.end();
  clearBackups();
});

describe('JobService: Backup Database', () => {
  it('starts one backup for two concurrent requests: one dump, one 409', async () => {
    const results = await Promise.allSettled([instance.app.jobs.create('backup-database'), instance.app.jobs.create('backup-database')]);
    const started = results.filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<JobService['create']>>> => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(started).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(refused[0].reason).toBeInstanceOf(ServiceError);
    expect(refused[0].reason.status).toBe(409);
    // While it runs, a third request is refused too.
    expect((await instance.app.jobs.create('backup-database').catch((e) => e)).status).toBe(409);
    const run = await started[0].value.done;
    expect(run).toMatchObject({ result: 'success', error: null });
    expect(dumps()).toEqual([run.filename]);
    const [queue] = await instance.app.jobs.getStatuses();
    expect(queue).toMatchObject({ name: 'backup-database', title: 'Backup Database', active: 0, waiting: 0, failed: 0, progressBytes: null });
    expect(queue.completed).toBeGreaterThanOrEqual(1);
    expect(queue.lastRun).toEqual(run);
  });

  it('refuses unknown jobs (400) and any job during maintenance (503)', async () => {
    expect((await instance.app.jobs.create('reticulate-splines').catch((e) => e)).status).toBe(400);
    await instance.app.maintenance.start();
    expect((await instance.app.jobs.create('backup-database').catch((e) => e)).status).toBe(503);
    expect(dumps()).toEqual([]);
  });

  it('applies retention after a successful backup: N+2 routine backups leave N, other kinds untouched', async () => {
    const keep = 3;
    await instance.app.systemConfig.update({ backup: { database: { keepLastAmount: keep } } });
    const older = [1, 2, 3, 4].map((day) => routineBackupName(new Date(Date.UTC(2024, 0, day, 2)), '1.1.0', '15.18'));
    const untouchable = [`restore-point-${older[0]}`, `uploaded-${older[0]}`, 'uploaded-other.sql', 'hand-made.sql.gz', 'immich-db-backup-notes.sql.gz'];
    for (const name of [...older, ...untouchable]) writeFileSync(join(folder(), name), 'x');
    writeFileSync(join(folder(), `${older[0]}.tmp`), 'stale');
    const run = await (await instance.app.jobs.create('backup-database')).done;
    expect(run.result).toBe('success');
    // 4 older + the new one = N+2 routine backups before retention.
    const left = readdirSync(folder()).filter((name) => name !== '.immich' && !name.endsWith('.manifest.json')).sort();
    expect(left).toEqual([...untouchable, older[2], older[3], run.filename!].sort());
    await instance.app.systemConfig.update({ backup: { database: { keepLastAmount: 14 } } });
  });

  it('records a failure with pg_dump stderr in the last run and the server log, and keeps no file', async () => {
    const lines: string[] = [];
    const jobs = jobServiceFor(lines);
    const spy = vi.spyOn(instance.app.db, 'serverVersion').mockResolvedValueOnce('9.6.24');
    const run = await (await jobs.create('backup-database')).done;
    spy.mockRestore();
    expect(run).toMatchObject({ result: 'failed', filename: null });
    expect(run.error).toMatch(/Unsupported PostgreSQL version 9\.6\.24: Lifeboat supports PostgreSQL 14, 15, 16, 17, 18/);
    expect(lines.some((line) => line.startsWith('ERROR Database backup failed: Unsupported PostgreSQL version'))).toBe(true);
    const [queue] = await jobs.getStatuses();
    expect(queue.failed).toBe(1);
    expect(queue.lastRun).toEqual(run);
    expect(dumps()).toEqual([]);
  });

  it('keeps counts and the last run across a restart (in a file beside the maintenance state)', async () => {
    const run = await (await instance.app.jobs.create('backup-database')).done;
    const before = (await instance.app.jobs.getStatuses())[0];
    const afterRestart = (await jobServiceFor([]).getStatuses())[0];
    expect(afterRestart).toEqual(before);
    expect(afterRestart.lastRun).toEqual(run);
  });

  it('reports a job that a crash interrupted as failed, once', async () => {
    const file = join(instance.uploadLocation, '.lifeboat', 'job-history.json');
    const deadPid = 2 ** 22 + 12345;
    writeFileSync(file, JSON.stringify({ 'backup-database': { completed: 5, failed: 1, lastRun: null, lastSuccessAt: null, running: { startedAt: '2025-01-01T02:00:00.000Z', pid: deadPid } } }));
    const lines: string[] = [];
    const [queue] = await jobServiceFor(lines).getStatuses();
    expect(queue).toMatchObject({ completed: 5, failed: 2, active: 0, lastRun: { result: 'failed', startedAt: '2025-01-01T02:00:00.000Z' } });
    expect(queue.lastRun!.error).toMatch(/stopped while this job was running/);
    const [again] = await jobServiceFor([]).getStatuses();
    expect(again.failed).toBe(2);
  });

  it('cancels a running backup on shutdown: pg_dump killed, no .tmp left, recorded as failed', async () => {
    const blocker = await blockPgDump(instance.database);
    const lines: string[] = [];
    const jobs = jobServiceFor(lines);
    try {
      const job = await jobs.create('backup-database');
      await until(blocker.waiting, 'pg_dump to wait for the table lock');
      expect(tmps()).toHaveLength(1);
      await jobs.stop();
      const run: LastRun = await job.done;
      expect(run.result).toBe('failed');
      expect(run.error).toMatch(/Cancelled: the server is shutting down/);
      expect(tmps()).toEqual([]);
      expect(dumps()).toEqual([]);
      // The killed pg_dump's backend goes away; nothing holds the lock file either.
      await until(async () => !(await blocker.waiting()), 'pg_dump backend to end');
      expect(instance.app.lock.current).toBeNull();
    } finally {
      await blocker.release();
    }
  });
});

describe('a hung pg_dump', () => {
  it('is killed after the timeout (its backend ends, the error says why)', async () => {
    const blocker = await blockPgDump(instance.database);
    try {
      const { pgDump } = await clientToolsFor(await instance.app.db.serverVersion());
      const tmp = join(folder(), 'hung.sql.gz.tmp');
      const error = await new DumpRepository().dumpToFile({ pgDump, connection: instance.app.db.connection, path: tmp, timeoutMs: 1500 }).catch((e) => e);
      expect(error.message).toMatch(/pg_dump ran longer than .* and was stopped as hung/);
      await until(async () => !(await blocker.waiting()), 'the killed pg_dump backend to end');
    } finally {
      await blocker.release();
    }
  });
});

describe('the scheduler', () => {
  it('follows config changes without a restart, runs retention, and stops when disabled', async () => {
    const lines: string[] = [];
    const jobs = jobServiceFor(lines);
    const completedBefore = (await jobs.getStatuses())[0].completed;
    await instance.app.systemConfig.update({ backup: { database: { enabled: true, cronExpression: '0 02 * * *', keepLastAmount: 2 } } });
    await jobs.startScheduler();
    try {
      expect(jobs.nextScheduledRun!.getHours()).toBe(2);
      // Every second: backups appear without restarting anything.
      await instance.app.systemConfig.update({ backup: { database: { cronExpression: '* * * * * *' } } });
      await until(async () => (await jobs.getStatuses())[0].completed >= completedBefore + 3, 'three scheduled backups');
      expect(lines.filter((line) => line === 'Database backup started (schedule)').length).toBeGreaterThanOrEqual(3);
      await instance.app.systemConfig.update({ backup: { database: { enabled: false } } });
      expect(jobs.nextScheduledRun).toBeNull();
      expect(lines).toContain('Scheduled database backups are turned off');
      // A backup counts as completed before its retention runs, and a fire may be under way:
      // count the files only once the last one has finished.
      await until(async () => (await jobs.getStatuses())[0].active === 0, 'the last scheduled backup to finish');
      expect(dumps().length).toBe(2);
    } finally {
      await jobs.stop();
    }
  });

  it('skips (and logs) a fire while a backup or restore holds the lock, and during maintenance', async () => {
    const lines: string[] = [];
    const jobs = jobServiceFor(lines);
    await instance.app.systemConfig.update({ backup: { database: { enabled: true, cronExpression: '* * * * * *', keepLastAmount: 14 } } });
    const release = instance.app.lock.acquire('restore');
    await jobs.startScheduler();
    try {
      await until(() => lines.find((line) => line.startsWith('Scheduled database backup skipped: A restore is already running')), 'a skipped fire');
      release();
      await instance.app.maintenance.start();
      await until(() => lines.find((line) => line === 'Scheduled database backup skipped: the server is in maintenance mode'), 'a fire skipped for maintenance');
      expect(dumps()).toEqual([]);
      expect((await jobs.getStatuses())[0].active).toBe(0);
    } finally {
      await jobs.stop();
      if (instance.app.lock.current) release();
      await instance.app.systemConfig.update({ backup: { database: { enabled: true, cronExpression: '0 02 * * *' } } });
    }
  });
});

describe('GET /api/jobs/events (Server-Sent Events)', () => {
  const admin = { user: { id: 'x', email: 'a@b.c', name: 'A', isAdmin: true }, maintenanceAdmin: false };

  async function open() {
    const controller = new AbortController();
    const response = await eventsGET({ locals: admin, request: new Request('http://localhost/api/jobs/events', { signal: controller.signal }) } as never);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const events: QueueStatus[][] = [];
    let comment = '';
    /** Reads until `predicate` holds for the events seen so far. */
    async function readUntil(predicate: (events: QueueStatus[][]) => boolean) {
      while (!predicate(events)) {
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (message.startsWith(':')) comment ||= message;
          else events.push(JSON.parse(message.replace(/^data: /, '')));
        }
      }
    }
    return { response, reader, controller, events, readUntil, comment: () => comment };
  }

  it('sends a comment at once, then the current statuses, then live progress and the result; unsubscribes on disconnect', async () => {
    // ~16 MB of incompressible data, so the dump takes long enough to report progress.
    await instance.app.db.query('CREATE TABLE sse_filler AS SELECT gen_random_bytes(1024) AS data FROM generate_series(1, 16000)');
    onTestFinished(() => instance.app.db.query('DROP TABLE sse_filler').then(() => undefined));
    const before = instance.app.jobs.subscriberCount;
    const stream = await open();
    expect(stream.response.headers.get('content-type')).toBe('text/event-stream');
    await stream.readUntil((events) => events.length >= 1);
    expect(stream.comment()).toBe(': connected');
    expect(stream.events[0][0]).toMatchObject({ name: 'backup-database', active: 0 });
    const completedBefore = stream.events[0][0].completed;
    expect(instance.app.jobs.subscriberCount).toBe(before + 1);

    await instance.app.jobs.create('backup-database');
    await stream.readUntil((events) => events.some((statuses) => statuses[0].completed === completedBefore + 1 && statuses[0].active === 0));
    const running = stream.events.filter((statuses) => statuses[0].active === 1);
    expect(running.length).toBeGreaterThan(0);
    expect(running.at(-1)![0].progressBytes).toBeGreaterThan(0);
    expect(stream.events.at(-1)![0]).toMatchObject({ active: 0, progressBytes: null, lastRun: { result: 'success' } });
    // No late progress tick shows the job as both counted and still running.
    expect(stream.events.filter((statuses) => statuses[0].completed > completedBefore && statuses[0].active === 1)).toEqual([]);

    stream.controller.abort();
    await until(() => instance.app.jobs.subscriberCount === before, 'the subscription to end');
  });

  it('also cleans up when the reader cancels the stream', async () => {
    const before = instance.app.jobs.subscriberCount;
    const stream = await open();
    await stream.readUntil((events) => events.length >= 1);
    expect(instance.app.jobs.subscriberCount).toBe(before + 1);
    await stream.reader.cancel();
    expect(instance.app.jobs.subscriberCount).toBe(before);
  });
});
