import { createReadStream } from 'node:fs';
import { open, statfs, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inflateStream, isInflateError } from '../process/igzip';
import { formatBytes } from '../../shared/format';
import { bytesCounter } from '../backup/parallel-gzip';
import type { ConnectionOptions } from '../db/connection';
import { restorePsqlFor } from '../db/pg-binaries';
import { DumpReadError, endMarkerCheck, PsqlError, PsqlInputClosed, type PsqlSession } from '../repositories/restore.repository';
import { ChildProcessError } from '../process/child';
import { freezeCopy } from '../dump-filter/statement-rules';
import { DumpSplitter, type SplitSink } from './dump-splitter';
import { restoreFilterFor, type LoadDeps, type LoadTarget } from './load-dump';
import { joinSmallUnits, planPostData, type PostDataUnit } from './post-data-plan';
import type { RestoreLog } from './restore-log';
import { SpoolBudget, SpoolBuffer, withSpoolFolder } from './spool';
import type { ValidatedDump } from './validate-backup';

export interface LoadProgress {
  /** 0..1 of the whole load. */
  fraction: number;
  /** What runs now, in words. */
  detail: string;
}

export interface ParallelLoadOptions {
  signal: AbortSignal;
  file?: FileHandle;
  /** Connections at once (psql processes). */
  jobs: number;
  /** Emptied before and removed after the load. */
  spoolFolder: string;
  onProgress?: (progress: LoadProgress) => void;
  /** Sees the file's bytes as they are read (a drill hashes what it loads). */
  onFileChunk?: (chunk: Buffer) => void;
  /** igzip's path, for a file the caller proves (by its SHA-256, before using the result) to be one zlib verified; else zlib inflates. */
  igzip?: string | null;
}

export interface ParallelLoadResult {
  tables: number;
  postDataUnits: number;
  spoolPeakBytes: number;
}

interface Block {
  copy: Buffer;
  table: string | null;
  settings: string[];
  buffer: SpoolBuffer;
}

/**
 * How far the reader may get ahead of a busy table's connection through the spool, for the next
 * table's connection: a dump's largest table is often most of it, and spooling all of it to find
 * nothing much behind costs a write and a read of each byte on cores the load needs.
 */
const SPILL_PER_BLOCK = 256 * 1024 * 1024;

/** Keys and foreign keys of tables with at most this many bytes of rows run together, on one connection. */
const SMALL_TABLE_BYTES = 4 * 1024 * 1024;

/** Beyond this many post-data units, the rest runs as one. */
const MAX_UNITS = 1000;

/** Share of the load's time the post-data (indexes, constraints) takes, for the progress bar. */
const POST_DATA_SHARE = 0.3;
// As prelude(): each session's writes go to the disk as they are made, not all at its COMMIT.
const SESSION_START = "SET client_min_messages = warning; SET backend_flush_after = '2MB';\n";

/**
 * A staged restore's load on several connections (the new database is invisible until the swap,
 * so no single transaction is needed): the file is read once; the pre-data runs first on one
 * connection; each table's COPY block then runs on its own connection, truncating the table in
 * the same transaction so that wal_level=minimal skips the WAL, with blocks read ahead of a busy
 * connection spooled to disk (bounded); then what follows the data runs with indexes and keys
 * of different tables side by side and foreign keys after them. Every connection is psql in
 * restricted mode as the unprivileged login. Any failure stops every connection and throws;
 * the caller drops the new database.
 */
export async function loadDumpParallel(deps: LoadDeps, dump: ValidatedDump, log: RestoreLog, target: LoadTarget, options: ParallelLoadOptions): Promise<ParallelLoadResult> {
  const { db, repository } = deps;
  const serverVersion = await db.serverVersion();
  const psql = await restorePsqlFor(serverVersion, deps.config.pgBinDir);
  const connection: ConnectionOptions = { ...target.login, database: target.database };
  const filter = await restoreFilterFor(deps, target, log);
  if (dump.kind === 'cluster') await log.info(`${dump.filename} is a cluster dump (pg_dumpall): only the "${db.connection.database}" database's part is restored`);
  const jobs = Math.max(1, Math.floor(options.jobs));

  return withSpoolFolder(options.spoolFolder, async (folder) => {
    const controller = new AbortController();
    const signal = AbortSignal.any([options.signal, controller.signal]);
    let failure: unknown = null;
    let waiters: Array<() => void> = [];
    const notify = () => {
      const list = waiters;
      waiters = [];
      for (const resolve of list) resolve();
    };
    let preEnded = () => {};
    const sessions = new Set<PsqlSession>();
    const fail = (error: unknown) => {
      // The first failure stops everything; a psql's own error or a damaged file replaces what only followed from it (a closed input, a killed session).
      if (failure) {
        if (weight(error) > weight(failure)) failure = error;
        return;
      }
      failure = error;
      controller.abort(error);
      preEnded();
      notify();
      for (const session of sessions) session.kill('another part of the load failed');
    };
    const openSession = (part: string, answers = false): PsqlSession => {
      const session = repository.startPsqlSession({ psql, connection, part, signal, timeoutMs: deps.config.childTimeoutMs, answers });
      sessions.add(session);
      session.done.then(
        () => sessions.delete(session),
        (error) => fail(error),
      );
      return session;
    };

    // Progress: bytes read from the file, bytes handed to psql, then post-data units done.
    const free = await statfs(folder).then((stats) => stats.bavail * stats.bsize).catch(() => 0);
    const budget = new SpoolBudget(folder, Math.min(4 * 1024 ** 3, Math.floor(free / 2)));
    let compressedRead = 0;
    let textRead = 0;
    let textLoaded = 0;
    let current = 'Creating the tables';
    const running = new Set<string>();
    const report = (fraction: number) => options.onProgress?.({ fraction: Math.min(0.999, fraction), detail: current });
    const dataProgress = () => {
      const expected = compressedRead > 0 ? (textRead * Math.max(dump.size, compressedRead)) / compressedRead : 1;
      report((1 - POST_DATA_SHARE) * Math.min(1, textLoaded / Math.max(1, expected)));
    };

    // The pre-data, on the first connection, in one transaction.
    const pre = openSession('the schema (the dump\'s part before its data)');
    let preDone: Promise<void> | null = null;
    const preEndedOrFailed = new Promise<void>((resolve) => (preEnded = resolve));
    const preWrite = pre.write(`${target.prelude}`);
    // Awaited by endPre(); a load stopped before that (shutdown, a damaged head) reports its own error.
    preWrite.catch(() => undefined);
    const endPre = () => {
      preEnded();
      preDone ??= (async () => {
        await preWrite;
        await pre.write('\nCOMMIT;\n');
        await pre.end();
      })();
      preDone.catch(fail);
      return preDone;
    };

    // COPY blocks, taken in order by `jobs` workers.
    const blocks: Block[] = [];
    let readerDone = false;
    /** Workers waiting for a block: only then is reading ahead (spooling) worth it. */
    let idle = 0;
    const changed = () => new Promise<void>((resolve) => waiters.push(resolve));
    let currentBlock: Block | null = null;
    let tables = 0;
    /** Bytes of rows per table (as the COPY names it), for the foreign keys' checks. */
    const tableBytes = new Map<string, number>();

    const restPath = join(folder, 'rest.sql');
    const rest = await open(restPath, 'w+', 0o600);
    let restSize = 0;
    const sink: SplitSink = {
      pre: async (bytes) => {
        textLoaded += bytes.length;
        await pre.write(bytes);
      },
      preEnd: async () => {
        void endPre();
      },
      blockStart: async (copy, table, settings) => {
        currentBlock = { copy, table, settings, buffer: new SpoolBuffer(budget, () => idle > 0, undefined, SPILL_PER_BLOCK) };
        blocks.push(currentBlock);
        tables++;
        notify();
      },
      block: async (bytes) => {
        await currentBlock!.buffer.push(bytes);
      },
      blockEnd: async () => {
        if (currentBlock!.table) tableBytes.set(currentBlock!.table, (tableBytes.get(currentBlock!.table) ?? 0) + currentBlock!.buffer.total);
        currentBlock!.buffer.end();
        currentBlock = null;
      },
      rest: async (bytes) => {
        // Honest dumps put only sequence values, indexes, constraints, triggers and privileges after the rows: a bounded spool.
        if (!budget.take(bytes.length)) {
          throw new Error(
            `The dump has more statements after its first table's rows than the spool folder may hold (${formatBytes(budget.limitBytes)} with the rows read ahead; pg_dump puts only sequence values, indexes, constraints and privileges there): ` +
              'it cannot be loaded on several connections. Set RESTORE_JOBS=1 to load it on one connection, or free disk space.',
          );
        }
        await rest.write(bytes, 0, bytes.length, restSize);
        restSize += bytes.length;
      },
      end: async () => {
        readerDone = true;
        notify();
      },
    };

    const runBlock = async (block: Block) => {
      try {
        const name = block.table ?? 'a table';
        const frozen = block.table ? freezeCopy(block.copy) : null;
        const session = openSession(`the data of ${name}`, frozen !== null);
        running.add(name);
        current = `Loading ${[...running].join(', ')}`;
        // An empty plain table is emptied again in the COPY's own transaction: with wal_level=minimal the COPY then skips the WAL.
        const truncate = block.table ? `${truncateIfEmpty(block.table)}\n` : '';
        await session.write(`${SESSION_START}${block.settings.join('\n')}\nBEGIN;\n${truncate}`);
        // Once truncated in this transaction, the rows may be written frozen (and the pages all-visible): no hint bits to set and
        // write again on the first scan (the index builds), no freezing by a later vacuum, and a faster COPY. The server decides.
        const truncated = frozen && (await session.answer(TRUNCATED, TRUNCATE_ANSWER_MS)) === 'yes';
        await session.write(truncated ? frozen : block.copy);
        for await (const chunk of block.buffer.read()) {
          if (failure) break;
          await session.write(chunk);
          textLoaded += chunk.length;
          dataProgress();
        }
        if (failure) return;
        await session.write('COMMIT;\n');
        await session.end();
        running.delete(name);
      } finally {
        await block.buffer.close();
      }
    };
    const blockWorker = async () => {
      await endPreWhenReady();
      for (;;) {
        if (failure) return;
        const block = blocks.shift();
        if (block) {
          await runBlock(block);
          continue;
        }
        if (readerDone) return;
        idle++;
        await changed();
        idle--;
      }
    };
    // Workers start once the pre-data committed, which is once the first block began (or the input ended).
    const endPreWhenReady = async () => {
      await preEndedOrFailed;
      await preDone;
    };

    try {
      const input = options.file
        ? options.file.createReadStream({ start: 0, autoClose: false, highWaterMark: 1024 * 1024 })
        : createReadStream(dump.path, { highWaterMark: 1024 * 1024 });
      const inflate = dump.compressed ? inflateStream(options.igzip ?? null, true, signal) : { stream: new PassThrough(), done: Promise.resolve() };
      const reading = Promise.all([
        pipeline(
        input,
        bytesCounter((total) => (compressedRead = total), options.onFileChunk),
        inflate.stream,
        bytesCounter((total) => (textRead = total)),
        endMarkerCheck(),
        filter,
        new DumpSplitter(sink),
        { signal },
        ),
        // igzip checks the CRC after its output: its exit is part of the read.
        inflate.done,
      ]).catch((error) => {
        if (isInflateError(error)) throw new DumpReadError(`The backup file is damaged (${(error as Error).message}): it is corrupted or was cut short.`, { cause: error });
        throw error;
      });
      reading.catch(fail);
      const workers = Array.from({ length: jobs }, () => blockWorker().catch(fail));
      await reading;
      await Promise.all(workers);
      await endPre();
      if (failure) throw failure;

      // What follows the data: indexes and keys side by side, foreign keys after them, the rest in order.
      current = 'Building indexes and constraints';
      report(1 - POST_DATA_SHARE);
      let units = joinSmallUnits(await planPostData(createReadStream(restPath), restSize), (table) => (tableBytes.get(table) ?? Infinity) <= SMALL_TABLE_BYTES);
      // Each unit costs a psql start: thousands of tiny ones (partitions' indexes) load faster in order on one connection.
      if (units.length > MAX_UNITS) units = [{ kind: 'serial', start: 0, end: restSize, tables: [], shared: false, settings: [] }];
      await runPostData(units, jobs, {
        failed: () => failure !== null,
        run: async (unit) => {
          const session = openSession(describeUnit(unit));
          // Index builds sort in memory when they can: a few hundred MB beats spilling to disk.
          const memory = unit.kind === 'serial' ? '' : `SET maintenance_work_mem = '${maintenanceMemoryMb(jobs)}MB';\n`;
          const check = unit.kind === 'foreign-key' ? foreignKeyCheckSettings(serverVersion, tableBytes.get(unit.tables[0]), tableBytes.get(unit.tables[1])) : '';
          await session.write(`${SESSION_START}${unit.settings.join('\n')}\n${memory}${check}`);
          for await (const chunk of createReadStream(restPath, { start: unit.start, end: unit.end - 1, highWaterMark: 1024 * 1024 })) {
            await session.write(chunk as Buffer);
          }
          await session.end();
        },
        onProgress: (done, total, detail) => {
          current = detail;
          report(1 - POST_DATA_SHARE + (POST_DATA_SHARE * done) / Math.max(1, total));
        },
      }).catch(fail);
      if (failure) throw failure;
      options.onProgress?.({ fraction: 1, detail: 'Loaded' });
      return { tables, postDataUnits: units.length, spoolPeakBytes: budget.peak };
    } catch (error) {
      fail(error);
      for (const session of sessions) session.kill('the load stopped');
      await Promise.allSettled([...sessions].map((session) => session.done));
      throw failure;
    } finally {
      for (const session of sessions) session.kill('the load stopped');
      await Promise.allSettled([...sessions].map((session) => session.done));
      for (const block of blocks) await block.buffer.close();
      await rest.close().catch(() => undefined);
    }
  });
}

/**
 * SQL for a COPY block's connection, in its transaction: a plain table the login owns, that no
 * foreign key or trigger refers to and that is still empty once locked (a second block of the same
 * table waits for the first to commit, and rows the dump inserted before its COPY are kept), is
 * truncated, so the COPY goes into a new file. The name is resolved on this connection, under the
 * dump's own search_path, and passed in a dollar quote with a random tag: no text of the dump can
 * end it.
 */
export function truncateIfEmpty(table: string): string {
  const tag = `$lifeboat_${randomBytes(8).toString('hex')}$`;
  const name = `${tag.slice(0, -1)}_name$`;
  return [
    `DO ${tag}`,
    'DECLARE r pg_catalog.regclass; empty boolean;',
    'BEGIN',
    "  PERFORM pg_catalog.set_config('lifeboat.truncated', 'no', true);",
    `  r := pg_catalog.to_regclass(${name}${table}${name});`,
    "  IF r IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = r AND c.relkind = 'r' AND pg_catalog.pg_has_role(c.relowner, 'USAGE'))",
    '     OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE confrelid = r) OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = r) THEN RETURN; END IF;',
    "  EXECUTE pg_catalog.format('LOCK TABLE ONLY %s IN ACCESS EXCLUSIVE MODE', r);",
    "  EXECUTE pg_catalog.format('SELECT NOT EXISTS (SELECT 1 FROM ONLY %s)', r) INTO empty;",
    "  IF empty THEN EXECUTE pg_catalog.format('TRUNCATE ONLY %s', r); PERFORM pg_catalog.set_config('lifeboat.truncated', 'yes', true); END IF;",
    `END ${tag};`,
  ].join('\n');
}

/** What truncateIfEmpty did, as the COPY's connection reads it. */
const TRUNCATED = "pg_catalog.current_setting('lifeboat.truncated', true)";
/** The TRUNCATE may wait for an earlier block of the same table; past this the COPY goes plain (never frozen unasked). */
const TRUNCATE_ANSWER_MS = 15_000;

/** How much an error says about why the load failed. */
function weight(error: unknown): number {
  if (error instanceof PsqlError || error instanceof DumpReadError) return 2;
  if (error instanceof PsqlInputClosed || (error instanceof ChildProcessError && error.exitCode === null) || (error as Error)?.name === 'AbortError') return 0;
  return 1;
}

function describeUnit(unit: PostDataUnit): string {
  if (unit.kind === 'serial') return 'the statements after the data';
  return unit.kind === 'foreign-key' ? `a foreign key of ${unit.tables[0]}` : `an index or key of ${unit.tables[0]}`;
}

/**
 * Checking a new foreign key reads every referencing row against the referenced keys. Before
 * PostgreSQL 16 the planner's anti join can only hash the referenced side: for a large table
 * referenced from a smaller one (album entries → assets) that hash costs seconds, where a merge or
 * a nested loop over the referenced key's index (it exists: a foreign key needs one) costs a fraction.
 */
export function foreignKeyCheckSettings(serverVersion: string, referencingBytes = 0, referencedBytes = 0): string {
  return Number.parseInt(serverVersion, 10) < 16 && referencedBytes > referencingBytes ? 'SET enable_hashjoin = off;\n' : '';
}

/** Per connection: at most 512 MB, and all of them together at most an eighth of the memory. */
function maintenanceMemoryMb(jobs: number): number {
  return Math.max(64, Math.min(512, Math.floor(totalmem() / 8 / jobs / 1024 / 1024)));
}

/**
 * Runs the units on `jobs` connections: a serial unit alone, after all before it; an index or key
 * beside others on other tables; a foreign key once every index and key before it is done.
 */
export async function runPostData(
  units: PostDataUnit[],
  jobs: number,
  hooks: { run(unit: PostDataUnit): Promise<void>; failed(): boolean; onProgress?(done: number, total: number, detail: string): void },
): Promise<void> {
  const state: Array<'waiting' | 'running' | 'done'> = units.map(() => 'waiting');
  /** Per table: how many running units hold it, and whether all of them only build an index (SHARE locks, which do not conflict). */
  const busy = new Map<string, { count: number; shared: boolean }>();
  const conflicts = (unit: PostDataUnit, table: string) => {
    const held = busy.get(table);
    return !!held && !(held.shared && unit.shared);
  };
  let done = 0;
  let waiters: Array<() => void> = [];
  const wakeAll = () => {
    const list = waiters;
    waiters = [];
    for (const resolve of list) resolve();
  };
  let first = 0;
  let runningCount = 0;
  let stopped = false;
  const pick = (): number | 'wait' | 'none' => {
    while (first < units.length && state[first] === 'done') first++;
    let keysPending = false;
    let anyWaiting = false;
    for (let i = first; i < units.length; i++) {
      const unit = units[i];
      if (unit.kind === 'serial') {
        // Nothing passes a serial unit, and it starts only once all before it are done.
        if (state[i] === 'waiting' && i === first && runningCount === 0) return i;
        return 'wait';
      }
      if (state[i] === 'waiting') {
        anyWaiting = true;
        if (!(unit.kind === 'foreign-key' && keysPending) && !unit.tables.some((table) => conflicts(unit, table))) return i;
      }
      if (unit.kind === 'key' && state[i] !== 'done') keysPending = true;
    }
    return anyWaiting ? 'wait' : 'none';
  };
  const describe = () => {
    const now = units.filter((_, i) => state[i] === 'running');
    const kinds = now.map((unit) => (unit.kind === 'serial' ? 'statements' : unit.kind === 'foreign-key' ? `foreign key on ${unit.tables[0]}` : `index on ${unit.tables[0]}`));
    return `Building indexes and constraints (${done} of ${units.length} done${kinds.length ? `; now: ${kinds.join(', ')}` : ''})`;
  };
  const worker = async () => {
    for (;;) {
      if (stopped || hooks.failed()) return;
      const next = pick();
      if (next === 'none') return;
      if (next === 'wait') {
        await new Promise<void>((resolve) => waiters.push(resolve));
        continue;
      }
      const unit = units[next];
      state[next] = 'running';
      runningCount++;
      for (const table of unit.tables) {
        const held = busy.get(table);
        busy.set(table, { count: (held?.count ?? 0) + 1, shared: (held?.shared ?? true) && unit.shared });
      }
      hooks.onProgress?.(done, units.length, describe());
      try {
        await hooks.run(unit);
      } catch (error) {
        stopped = true;
        throw error;
      } finally {
        runningCount--;
        state[next] = 'done';
        done++;
        for (const table of unit.tables) {
          const held = busy.get(table)!;
          if (held.count > 1) busy.set(table, { count: held.count - 1, shared: held.shared });
          else busy.delete(table);
        }
        hooks.onProgress?.(done, units.length, describe());
        wakeAll();
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.max(1, jobs) }, worker));
  wakeAll();
  const rejected = results.find((result) => result.status === 'rejected');
  if (rejected) throw (rejected as PromiseRejectedResult).reason;
}
