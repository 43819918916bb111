import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { open, stat, statfs, type FileHandle } from 'node:fs/promises';
import { PassThrough, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { bytesCounter } from '../backup/parallel-gzip';
// The dump's last lines, anchored at its end (the same words in the rows of a file cut short are not its end).
import { END_MARKER } from '../backup/dump-stats';
import { childEnv, connectionArgs, type ConnectionOptions } from '../db/connection';
import type { Database } from '../db/database';
import { FileDigest } from '../backup/manifest';
import { inflateStream, isInflateError } from '../process/igzip';
import { ChildProcessError, startChild, type ManagedChild } from '../process/child';
import { closeFd, FdReader, FdWriter, makePipes, type Pipe } from '../process/fd-pump';
import type { RestoreFilter } from '../dump-filter';
import { databaseProperties, dropRole, ensureUnprivilegedRole, handOver, rightsOf, setDatabaseProperties, withAdmin, type DatabaseProperties, type RoleRights } from '../db/roles';

/** The dump could not be read to its end: corrupted or truncated gzip, or no end marker. */
export class DumpReadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DumpReadError';
  }
}

/** psql stopped on an SQL error; its transaction was rolled back. */
export class PsqlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PsqlError';
  }
}

export interface LoadDumpOptions {
  psql: string;
  connection: ConnectionOptions;
  path: string;
  /** Read from this open file instead of `path`: a file renamed over the name meanwhile does not matter. */
  file?: FileHandle;
  compressed: boolean;
  /** Rewrites the SQL on its way to psql (createRestoreFilter). */
  filter: RestoreFilter;
  /** SQL run first, in the transaction (see prelude()). */
  prelude: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Bytes of the file (compressed) read so far. */
  onBytesRead?: (bytes: number) => void;
  /**
   * The file must be this one (its manifest's SHA-256 and size): checked on the bytes read, before
   * COMMIT. `error` is thrown otherwise. With `igzip` (its path) and a verified manifest, igzip inflates.
   */
  expectFile?: { sha256: string; size: number; verified: boolean; error: string };
  igzip?: string | null;
}

/** An extension the dump needs, created by the app before the load (see restore/extensions.ts). */
export interface DumpExtension {
  name: string;
  /** The schema the dump puts it in; null: the server's default. */
  schema: string | null;
}

/**
 * What psql runs before the dump, inside its transaction (one line, so that psql's line numbers
 * are the dump's plus two: the \restrict line and this one).
 * - staged: nothing to clear, the database is new;
 * - in place, as the owner role: everything it owns goes (its tables, functions, types...), the
 *   extensions the app made stay (a superuser owns them), and those the dump needs are made if
 *   missing (trusted ones, when there is no administrator to make them first);
 * - in place, as a superuser (RESTORE_ALLOW_PRIVILEGED): the public schema is replaced, as before
 *   the owner role existed (a superuser's objects cannot be dropped with DROP OWNED).
 */
export function prelude(kind: 'staged' | 'in-place' | 'in-place-superuser', extensions: DumpExtension[] = []): string {
  // The load's own writes are handed to the disk as they go (2 MB at a time), not all at COMMIT,
  // whose sync of the new tables and indexes then has little left to write.
  const statements = ['BEGIN;', 'SET client_min_messages = warning;', "SET backend_flush_after = '2MB';"];
  if (kind !== 'staged') {
    // A session still holding a lock must not hang the restore forever.
    statements.push("SET lock_timeout = '60s';");
    if (kind === 'in-place') {
      statements.push('DROP OWNED BY CURRENT_USER;', 'CREATE SCHEMA IF NOT EXISTS public;');
    } else {
      // pg_dump (15+) never creates or drops `public`: without this the dump's CREATEs collide with what is there.
      statements.push(
        'DROP SCHEMA IF EXISTS public CASCADE;',
        'CREATE SCHEMA public AUTHORIZATION pg_database_owner;',
        "COMMENT ON SCHEMA public IS 'standard public schema';",
      );
    }
    statements.push('GRANT USAGE ON SCHEMA public TO PUBLIC;');
    for (const extension of extensions) statements.push(...createExtensionSql(extension, (name) => pg.escapeIdentifier(name)));
    statements.push("SET lock_timeout = '0';");
  }
  return statements.join(' ') + '\n';
}

/** CREATE SCHEMA/EXTENSION IF NOT EXISTS for an allowed extension (names are checked against the allow-list first). */
export function createExtensionSql({ name, schema }: DumpExtension, id: (name: string) => string, schemaOwner?: string): string[] {
  const statements: string[] = [];
  if (schema && schema !== 'public' && schema !== 'pg_catalog') {
    statements.push(`CREATE SCHEMA IF NOT EXISTS ${id(schema)}${schemaOwner ? ` AUTHORIZATION ${id(schemaOwner)}` : ''};`);
  }
  statements.push(`CREATE EXTENSION IF NOT EXISTS ${id(name)}${schema ? ` WITH SCHEMA ${id(schema)}` : ''};`);
  return statements;
}

/**
 * Written only after the whole file was read, decompressed and filtered without error.
 * psql's own --single-transaction commits at end of input, and a parent that dies (or a
 * truncated COPY) is also an end of input: with an explicit COMMIT, anything short of a
 * complete dump ends in a rollback when psql exits or is killed.
 */
const COMMIT = '\nCOMMIT;\n';

/** psql's restricted mode, with a key the dump cannot know: psql itself refuses every meta-command in it (\\! among them). */
function restrictLine(): string {
  return `\\restrict ${randomBytes(24).toString('hex')}\n`;
}

// pg_dump and pg_dumpall end with this comment; its absence means the text was cut short.
const TAIL_BYTES = 16 * 1024;

/** The text's last bytes (copied: the chunks may be reused), to check its end marker. */
class DumpTail {
  readonly #bytes = Buffer.alloc(TAIL_BYTES);
  #length = 0;

  add(chunk: Buffer): void {
    if (chunk.length >= TAIL_BYTES) {
      chunk.copy(this.#bytes, 0, chunk.length - TAIL_BYTES);
      this.#length = TAIL_BYTES;
      return;
    }
    const kept = Math.min(this.#length, TAIL_BYTES - chunk.length);
    this.#bytes.copy(this.#bytes, 0, this.#length - kept, this.#length);
    chunk.copy(this.#bytes, kept);
    this.#length = kept + chunk.length;
  }

  check(): void {
    if (!END_MARKER.test(this.#bytes.toString('latin1', 0, this.#length))) {
      throw new DumpReadError('The dump is incomplete: it does not end with the "PostgreSQL database dump complete" line (the file was cut short or edited).');
    }
  }
}

/** Fails at the end of the text when the dump's last lines are missing. */
export function endMarkerCheck(): Transform {
  const tail = new DumpTail();
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      tail.add(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      try {
        tail.check();
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
}

/** A pass-through whose end waits for `check`: a rejection fails the pipeline before anything after it sees the end. */
function beforeCommit(check: () => Promise<void>): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      callback(null, chunk);
    },
    flush(callback) {
      check().then(() => callback(), (error: Error) => callback(error));
    },
  });
}

/** psql's stdin as the end of a pipeline: it is never ended unless every byte before it arrived. */
function psqlInput(stdin: NodeJS.WritableStream & { destroyed?: boolean }, first: string, last: string): Writable {
  let started = false;
  const write = (chunk: Buffer | string, callback: (error?: Error | null) => void) => {
    if (stdin.destroyed) return callback(new PsqlInputClosed());
    if (stdin.write(chunk)) return callback();
    const onDrain = () => {
      stdin.removeListener('close', onClose);
      callback();
    };
    const onClose = () => {
      stdin.removeListener('drain', onDrain);
      callback(new PsqlInputClosed());
    };
    stdin.once('drain', onDrain);
    stdin.once('close', onClose);
  };
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      if (started) return write(chunk, callback);
      started = true;
      write(first, (error) => (error ? callback(error) : write(chunk, callback)));
    },
    final(callback) {
      const finish = () => write(last, (error) => (error ? callback(error) : stdin.end(() => callback())));
      if (started) return finish();
      started = true;
      write(first, (error) => (error ? callback(error) : finish()));
    },
  });
}

/** psql reading SQL on stdin, stopping at the first error; the caller writes `\restrict` first. */
function startRestorePsql(options: { psql: string; connection: ConnectionOptions; signal?: AbortSignal; timeoutMs?: number; output?: boolean; stdin?: number }) {
  // "-f -" rather than plain stdin: psql then names the line of an error.
  const args = [...connectionArgs(options.connection), '--no-psqlrc', '--no-password', '--quiet', '-v', 'ON_ERROR_STOP=1', '-f', '-'];
  const psql = startChild(options.psql, args, {
    env: { ...childEnv(options.connection), PGAPPNAME: 'lifeboat-restore' },
    stdio: [options.stdin ?? 'pipe', options.output ? 'pipe' : 'ignore', 'pipe'],
    signal: options.signal,
    timeoutMs: options.timeoutMs,
  });
  // EPIPE when psql stops on an error: its exit code and stderr say why.
  psql.child.stdin?.on('error', () => undefined);
  return psql;
}

export interface PsqlSession {
  /** Resolves when psql took the bytes (backpressure); rejects once psql stopped reading. */
  write(chunk: Buffer | string): Promise<void>;
  /**
   * The text value of an SQL expression, run where the session's input has got to (a session
   * started with `answers`). Null when psql stops first, or when no answer comes within
   * `waitMs` (psql may be inside a string the input opened, waiting for more).
   */
  answer(expression: string, waitMs: number): Promise<string | null>;
  /** Ends the input and waits for psql to finish it. */
  end(): Promise<void>;
  done: Promise<void>;
  kill(reason: string): void;
}

export class PsqlInputClosed extends Error {
  constructor() {
    super('psql stopped reading its input');
  }
}

/** SQL and processes of a restore: psql fed with a filtered dump, and other sessions ended. No rules. */
export class RestoreRepository {
  async fileSize(path: string): Promise<number> {
    return (await stat(path)).size;
  }

  /**
   * Runs the dump in one transaction: the file is streamed (gunzipped, filtered) into psql in
   * restricted mode after the prelude, and COMMIT follows only a complete, clean read. On any
   * failure psql is killed, so its transaction rolls back.
   */
  async loadDump(options: LoadDumpOptions): Promise<void> {
    // igzip inflating: its output and psql's input go through pipes of our own and two threads (see fd-pump.ts).
    const pipes = options.compressed && options.igzip && options.expectFile?.verified ? await makePipes(2) : null;
    const { psql, fed } = pipes ? this.#feedThroughPipes(options, pipes[0], pipes[1]) : this.#feedThroughStreams(options);
    // Kill before psql could see its input end: then nothing commits.
    fed.catch((error) => psql.kill(`the dump was not restored: ${error.message}`));
    const [input, exit] = await Promise.allSettled([fed, psql.done]);
    if (input.status === 'rejected' && !(input.reason instanceof PsqlInputClosed)) {
      const reason = input.reason as Error;
      if (options.signal?.aborted) throw exit.status === 'rejected' ? exit.reason : reason;
      // zlib errors ("unexpected end of file", "incorrect header check") or igzip's mean a damaged archive.
      if (isInflateError(reason)) {
        throw new DumpReadError(`The backup file is damaged (${reason.message}): it is corrupted or was cut short.`, { cause: reason });
      }
      throw reason;
    }
    if (exit.status === 'rejected') {
      const error = exit.reason as ChildProcessError;
      if (options.signal?.aborted || error.exitCode === null) throw error;
      throw new PsqlError(`psql stopped on an error and its transaction was rolled back: ${describePsqlError(error.stderr) || error.message}`);
    }
    if (input.status === 'rejected') throw new PsqlError('psql stopped reading the dump before its end; its transaction was rolled back.');
  }

  /** The file read, inflated and filtered by streams of this process, into psql's stdin. */
  #feedThroughStreams(options: LoadDumpOptions): { psql: ManagedChild; fed: Promise<void> } {
    const psql = startRestorePsql(options);
    const stdin = psql.child.stdin!;
    const { expectFile } = options;
    const digest = expectFile ? new FileDigest() : null;
    const inflate = options.compressed ? inflateStream(options.igzip ?? null, !!expectFile?.verified, options.signal) : { stream: new PassThrough(), done: Promise.resolve() };
    const fed = pipeline(
      this.#fileStream(options),
      bytesCounter((total) => options.onBytesRead?.(total), digest ? (chunk) => digest.update(chunk) : undefined),
      inflate.stream,
      endMarkerCheck(),
      options.filter,
      // Before COMMIT: the inflater exited cleanly (igzip checks the CRC after its output) and the bytes were the expected file's.
      beforeCommit(async () => {
        await inflate.done;
        if (digest && expectFile && (digest.size !== expectFile.size || digest.digest() !== expectFile.sha256)) throw new Error(expectFile.error);
      }),
      // psql's restricted mode, with a key the dump cannot know: psql itself refuses every meta-command in it (\! among them).
      psqlInput(stdin, restrictLine() + options.prelude, COMMIT),
    );
    return { psql, fed };
  }

  /**
   * The same steps as #feedThroughStreams for a verified file igzip inflates, with the inflated
   * text kept off this process's streams: igzip writes a pipe a thread reads, the filter runs
   * here on each MiB, and another thread writes the text into psql's pipe (see fd-pump.ts).
   */
  #feedThroughPipes(options: LoadDumpOptions, fromIgzip: Pipe, toPsql: Pipe): { psql: ManagedChild; fed: Promise<void> } {
    const expectFile = options.expectFile!;
    const children: ManagedChild[] = [];
    const threads: { stop(): Promise<void> }[] = [];
    // A thread may be in a read or write of its descriptor until it stops: only then is it closed.
    const closeOurs = async () => {
      await Promise.all(threads.map((thread) => thread.stop()));
      for (const fd of [toPsql.writeEnd, fromIgzip.readEnd]) closeFd(fd);
    };
    // Killed before psql could see its input end: then nothing commits. The threads' reads and writes then end too.
    const stop = async (error: Error): Promise<never> => {
      for (const child of children) child.kill(`the dump was not restored: ${error.message}`);
      await closeOurs();
      throw error;
    };
    let psql: ManagedChild | null = null;
    try {
      try {
        psql = startRestorePsql({ ...options, stdin: toPsql.readEnd });
        children.push(psql);
        children.push(startChild(options.igzip!, ['-d', '-c'], { stdio: ['pipe', fromIgzip.writeEnd, 'pipe'], signal: options.signal }));
      } finally {
        // The children have their ends: with ours closed, igzip's exit is the end of our input and psql's exit fails our writes.
        for (const fd of [toPsql.readEnd, fromIgzip.writeEnd]) closeFd(fd);
      }
      const load = this.#pump(options, expectFile, children[1], toPsql.writeEnd, fromIgzip.readEnd, threads);
      return { psql, fed: load.then(closeOurs, stop) };
    } catch (error) {
      // Set-up failed (a child or a thread could not start): nothing was written but the prelude.
      const fed = stop(error as Error);
      if (!psql) return fed as never;
      return { psql, fed };
    }
  }

  /** #feedThroughPipes' work once the children run: the file into igzip, igzip's text through the filter into psql. */
  #pump(options: LoadDumpOptions, expectFile: NonNullable<LoadDumpOptions['expectFile']>, igzip: ManagedChild, toPsql: number, fromIgzip: number, threads: { stop(): Promise<void> }[]): Promise<void> {
    // Its exit is awaited where it matters (before COMMIT); a load that fails first kills it.
    igzip.done.catch(() => undefined);
    const digest = new FileDigest();
    igzip.child.stdin!.on('error', () => undefined);
    const compressed = pipeline(
      this.#fileStream(options),
      bytesCounter((total) => options.onBytesRead?.(total), (chunk) => digest.update(chunk)),
      igzip.child.stdin!,
    ).catch(async (error: NodeJS.ErrnoException) => {
      // igzip stopped reading: its exit says why. Any other error is the file's own (a failed read), not a damaged backup.
      if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_PREMATURE_CLOSE') await igzip.done;
      throw error;
    });
    compressed.catch(() => undefined);

    const filter = options.filter;
    const tail = new DumpTail();
    const writer = new FdWriter(toPsql);
    threads.push(writer);
    const inputClosed = writer.failed.catch((error: Error & { code?: string }) => {
      throw error.code === 'EPIPE' ? new PsqlInputClosed() : error;
    });
    inputClosed.catch(() => undefined);
    // psql's restricted mode, with a key the dump cannot know (see #feedThroughStreams).
    writer.write(restrictLine() + options.prelude);
    writer.flush();
    const reader: FdReader = new FdReader(fromIgzip, (chunk) => {
      tail.add(chunk);
      for (const text of filter.filterChunk(chunk)) writer.write(text);
      writer.flush();
      if (!writer.busy) return;
      reader.pause();
      writer.drained().then(() => reader.resume(), () => undefined);
    });
    threads.push(reader);
    return (async () => {
      await Promise.race([Promise.all([reader.done, compressed]), inputClosed]);
      // Before COMMIT: igzip exited cleanly (it checks the CRC after its output), the text ended as a dump does, and the bytes were the expected file's.
      await Promise.race([igzip.done, inputClosed]);
      tail.check();
      for (const text of filter.finishText()) writer.write(text);
      if (digest.size !== expectFile.size || digest.digest() !== expectFile.sha256) throw new Error(expectFile.error);
      writer.write(COMMIT);
      writer.flush();
      await Promise.race([writer.drained(true), inputClosed]);
    })();
  }

  #fileStream(options: LoadDumpOptions) {
    return options.file
      ? options.file.createReadStream({ start: 0, autoClose: false, highWaterMark: 1024 * 1024 })
      : createReadStream(options.path, { highWaterMark: 1024 * 1024 });
  }

  /**
   * One psql in restricted mode (its key written first, unknown to the input) for a part of a
   * parallel load: the caller writes the part and ends it. Rejects with the error psql stopped on.
   */
  startPsqlSession(options: { psql: string; connection: ConnectionOptions; part: string; signal?: AbortSignal; timeoutMs?: number; answers?: boolean }): PsqlSession {
    const psql = startRestorePsql({ ...options, output: options.answers });
    const stdin = psql.child.stdin!;
    // What the session prints is read (and dropped) line by line, looking for the answer awaited now.
    let awaited: { tag: string; resolve: (value: string | null) => void } | null = null;
    let line = '';
    const stdout = psql.child.stdout;
    stdout?.setEncoding('latin1');
    stdout?.on('data', (text: string) => {
      const lines = (line + text).split('\n');
      line = lines.pop()!.slice(-4096);
      if (!awaited) return;
      for (const printed of lines) {
        const at = printed.indexOf(awaited.tag);
        if (at === -1) continue;
        awaited.resolve(printed.slice(at + awaited.tag.length).trim());
        awaited = null;
        return;
      }
    });
    // psql reads from a socket buffer of a few hundred KiB, a few milliseconds of COPY: more is queued here, so that
    // psql does not wait on this process between two writes (a spool read, a lexer pass, a garbage collection).
    let wake: (() => void) | null = null;
    const flushed = () => {
      const resolve = wake;
      wake = null;
      resolve?.();
    };
    stdin.on('close', flushed);
    const write = async (chunk: Buffer | string): Promise<void> => {
      if (stdin.destroyed || stdin.writableEnded) throw new PsqlInputClosed();
      stdin.write(chunk, flushed);
      while (stdin.writableLength > SESSION_QUEUE_BYTES) {
        await new Promise<void>((resolve) => (wake = resolve));
        if (stdin.destroyed) throw new PsqlInputClosed();
      }
    };
    const done = psql.done.catch((error: ChildProcessError) => {
      // Killed (by us, or a timeout): no exit code. An exit code is psql's own verdict, even if the load was stopping meanwhile.
      if (error.exitCode === null) throw error;
      throw new PsqlError(`psql stopped on an error while loading ${options.part}: ${describePsqlError(error.stderr, 0) || error.message}`);
    });
    done.catch(() => undefined);
    const first = write(restrictLine());
    first.catch(() => undefined);
    done.then(
      () => awaited?.resolve(null),
      () => awaited?.resolve(null),
    );
    return {
      write: async (chunk) => {
        await first;
        await write(chunk);
      },
      answer: async (expression, waitMs) => {
        if (!stdout) throw new Error('This psql session was started without answers');
        // A random tag: nothing the dump printed on this connection can pass for the answer.
        const tag = `lifeboat-${randomBytes(8).toString('hex')}=`;
        let timer: NodeJS.Timeout | undefined;
        const value = new Promise<string | null>((resolve) => {
          awaited = { tag, resolve };
          timer = setTimeout(() => resolve(null), waitMs);
        });
        await first;
        await write(`SELECT '${tag}' || coalesce((${expression})::text, '');\n`);
        try {
          return await value;
        } finally {
          clearTimeout(timer);
          awaited = null;
        }
      },
      end: async () => {
        await first;
        // psql's exit is the answer: the end callback of a pipe psql already closed may never come.
        if (!stdin.destroyed && !stdin.writableEnded) stdin.end();
        await done;
      },
      done,
      kill: (reason) => psql.kill(reason),
    };
  }

  /** The server's data directory (needs an administrator, or pg_read_all_settings). */
  async dataDirectory(connection: ConnectionOptions): Promise<string> {
    return withAdmin(connection, null, async (client) => (await client.query<{ dir: string }>("SELECT pg_catalog.current_setting('data_directory') AS dir")).rows[0].dir);
  }

  /** Free bytes for an unprivileged writer on the disk holding `path`. */
  async freeBytes(path: string): Promise<number> {
    const stats = await statfs(path);
    return stats.bavail * stats.bsize;
  }

  /** Holds the dump open for the whole restore. */
  openDump(path: string): Promise<FileHandle> {
    return open(path, 'r');
  }

  async databaseSize(db: Database): Promise<number> {
    const { rows } = await db.query<{ size: string }>('SELECT pg_database_size(current_database()) AS size');
    return Number(rows[0].size);
  }

  /**
   * The identity of the public schema and its tables (their OIDs). The restore's transaction
   * drops and re-creates the schema first, so if any part of it committed, these change;
   * equal before and after a failed restore means nothing was committed. Cheap at any size.
   */
  async fingerprint(db: Database): Promise<string> {
    const { rows } = await db.query(
      `SELECT n.oid AS schema, (SELECT json_agg(c.oid ORDER BY c.oid) FROM pg_class c WHERE c.relnamespace = n.oid) AS relations
       FROM pg_namespace n WHERE n.nspname = 'public'`,
    );
    return JSON.stringify(rows[0] ?? null);
  }

  /** Ends every other session on the database (from "postgres"), so DROP SCHEMA does not wait on them. */
  async terminateConnections(connection: ConnectionOptions, database: string): Promise<number> {
    return withAdmin(connection, null, (client) => terminate(client, [database]));
  }

  /** What deciding on a staged restore needs to know about the instance database and the connecting role. */
  async stagingFacts(connection: ConnectionOptions): Promise<StagingFacts | null> {
    return withAdmin(connection, null, async (client) => {
      const serverMajor = Math.floor(Number((await client.query('SHOW server_version_num')).rows[0].server_version_num) / 10000);
      // RENAME and DROP act with the owner's privileges (USAGE); CREATE DATABASE ... OWNER needs SET from 16 on.
      const mayActAsOwner = serverMajor >= 16 ? `pg_has_role(d.datdba, 'USAGE') AND pg_has_role(d.datdba, 'SET')` : `pg_has_role(d.datdba, 'USAGE')`;
      const { rows } = await client.query<StagingFacts>(
        `SELECT pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding,
                d.datcollate AS collate, d.datctype AS ctype, d.datconnlimit AS "connectionLimit", t.spcname AS tablespace,
                -- datlocprovider exists from PostgreSQL 15 on; before, every database used libc.
                coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') AS "localeProvider",
                d.datacl IS NULL AS "defaultPrivileges", d.datistemplate AS "isTemplate",
                EXISTS (SELECT 1 FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) AS "hasSettings",
                EXISTS (SELECT 1 FROM pg_shdescription c WHERE c.objoid = d.oid AND c.classoid = 'pg_database'::regclass) AS "hasComment",
                EXISTS (SELECT 1 FROM pg_shseclabel l WHERE l.objoid = d.oid AND l.classoid = 'pg_database'::regclass) AS "hasSecurityLabel",
                -- Slots and subscriptions stay with the database they were made in, and would keep it from being dropped.
                EXISTS (SELECT 1 FROM pg_replication_slots s WHERE s.database = d.datname)
                  OR EXISTS (SELECT 1 FROM pg_subscription s WHERE s.subdbid = d.oid) AS "hasReplication",
                r.rolsuper AS superuser, r.rolcreatedb AS "createDb", ${mayActAsOwner} AS "ownerMember",
                current_database() AS "adminDatabase", ${serverMajor} AS "serverMajor"
         FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace JOIN pg_roles r ON r.rolname = current_user
         WHERE d.datname = $1`,
        [connection.database],
      );
      return rows[0] ?? null;
    });
  }

  /** An empty database made like the instance's (encoding, locale, tablespace, connection limit), owned by `owner`. */
  async createDatabaseLike(connection: ConnectionOptions, name: string, like: StagingFacts, owner: string): Promise<void> {
    await withAdmin(connection, null, async (client) => {
      const id = (value: string) => client.escapeIdentifier(value);
      const literal = (value: string) => client.escapeLiteral(value);
      await client.query(
        `CREATE DATABASE ${id(name)} WITH TEMPLATE template0 OWNER ${id(owner)} ENCODING ${literal(like.encoding)}` +
          ` LC_COLLATE ${literal(like.collate)} LC_CTYPE ${literal(like.ctype)}` +
          // From 15 on the provider is copied from template0 unless named: the instance's is libc (see cannotStage).
          (like.serverMajor >= 15 ? ' LOCALE_PROVIDER libc' : '') +
          // Naming a tablespace needs CREATE on it, which roles lack even on pg_default: only when it is another.
          (like.tablespace === 'pg_default' ? '' : ` TABLESPACE ${id(like.tablespace)}`) +
          ` CONNECTION LIMIT ${Number(like.connectionLimit)}`,
      );
    });
  }

  /** Drops the database if it exists, ending its sessions first. */
  async dropDatabase(connection: ConnectionOptions, name: string): Promise<void> {
    await withAdmin(connection, null, async (client) => {
      const id = client.escapeIdentifier(name);
      // A dump run as the database's owner may have made it a template, which DROP refuses.
      const { rows } = await client.query<{ isTemplate: boolean }>('SELECT datistemplate AS "isTemplate" FROM pg_database WHERE datname = $1', [name]);
      if (rows[0]?.isTemplate) await client.query(`ALTER DATABASE ${id} IS_TEMPLATE false`);
      await client.query(`DROP DATABASE IF EXISTS ${id} WITH (FORCE)`);
    });
  }

  async databaseExists(connection: ConnectionOptions, name: string): Promise<boolean> {
    return withAdmin(connection, null, async (client) => {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      return rowCount === 1;
    });
  }

  /**
   * Renames databases in one transaction: all of the renames happen, or none. A database
   * with sessions cannot be renamed, so they are ended first; a client that reconnects in
   * between makes the attempt fail, and it is tried again a few times.
   */
  async renameDatabases(connection: ConnectionOptions, renames: Array<[from: string, to: string]>): Promise<void> {
    await withAdmin(connection, null, async (client) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await terminate(client, renames.map(([from]) => from));
          await client.query('BEGIN');
          for (const [from, to] of renames) await client.query(`ALTER DATABASE ${client.escapeIdentifier(from)} RENAME TO ${client.escapeIdentifier(to)}`);
          await client.query('COMMIT');
          return;
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          // 55006 object_in_use: "database ... is being accessed by other users".
          if ((error as { code?: string }).code !== '55006' || attempt >= RENAME_ATTEMPTS) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
        }
      }
    });
  }

  /** Names of the roles on the server: a dump's GRANTs to others are left out. */
  async roleNames(connection: ConnectionOptions): Promise<Set<string>> {
    return withAdmin(connection, null, async (client) => {
      const { rows } = await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles');
      return new Set(rows.map((row) => row.rolname));
    });
  }

  /** Extensions created in this database. */
  async installedExtensions(connection: ConnectionOptions, database: string): Promise<string[]> {
    return withAdmin(connection, database, async (client) => (await client.query<{ extname: string }>('SELECT extname FROM pg_extension')).rows.map((row) => row.extname));
  }

  /** Ends the sessions of one role on one database (a killed psql's session may run on in the server). */
  async terminateSessionsOf(connection: ConnectionOptions, database: string, role: string): Promise<void> {
    await withAdmin(connection, null, (client) =>
      client.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = $2 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        [database, role],
      ),
    );
  }

  /** Extensions the server can create (installed on its machine). */
  async availableExtensions(connection: ConnectionOptions): Promise<Set<string>> {
    return withAdmin(connection, null, async (client) => {
      const { rows } = await client.query<{ name: string }>('SELECT name FROM pg_available_extensions');
      return new Set(rows.map((row) => row.name));
    });
  }

  /** As the administrator, in `database`: the extensions a dump needs, their schemas owned by `schemaOwner`. */
  async createExtensions(admin: ConnectionOptions, database: string, extensions: DumpExtension[], schemaOwner: string): Promise<void> {
    if (!extensions.length) return;
    await withAdmin(admin, database, async (client) => {
      for (const extension of extensions) {
        for (const statement of createExtensionSql(extension, (name) => client.escapeIdentifier(name), schemaOwner)) await client.query(statement);
      }
    });
  }

  /** Before PostgreSQL 15 a new database's public schema belongs to the bootstrap superuser: the restore role gets it, as a 15+ owner has it. */
  async givePublicSchema(admin: ConnectionOptions, database: string, role: string): Promise<void> {
    await withAdmin(admin, database, (client) => client.query(`ALTER SCHEMA public OWNER TO ${client.escapeIdentifier(role)}`));
  }

  /** An unprivileged login role for one restore (see db/roles.ts), with this password. */
  async createRestoreRole(admin: ConnectionOptions, role: string, password: string): Promise<void> {
    await withAdmin(admin, null, (client) => ensureUnprivilegedRole(client, role, password));
  }

  async dropRole(admin: ConnectionOptions, role: string): Promise<void> {
    await withAdmin(admin, null, (client) => dropRole(client, role));
  }

  /** The facts about a role that decide whether a dump may run as it. */
  async rightsOf(connection: ConnectionOptions, role: string): Promise<RoleRights | null> {
    return withAdmin(connection, null, (client) => rightsOf(client, role));
  }

  /** After a staged load: everything the restore role made goes to the owner role, and so does the database. */
  async handOver(admin: ConnectionOptions, database: string, from: string, to: string, properties: DatabaseProperties): Promise<void> {
    await handOver(admin, database, from, to, properties);
  }

  async databaseProperties(admin: ConnectionOptions, database: string): Promise<DatabaseProperties> {
    return withAdmin(admin, null, (client) => databaseProperties(client, database));
  }

  async setDatabaseProperties(admin: ConnectionOptions, database: string, properties: DatabaseProperties): Promise<void> {
    await withAdmin(admin, null, (client) => setDatabaseProperties(client, database, properties));
  }

  /** The owner role put back as it must be (a dump run in place as that role may have changed its settings or password). */
  async resetOwnerRole(admin: ConnectionOptions, owner: string, password: string | undefined): Promise<void> {
    await withAdmin(admin, null, (client) => ensureUnprivilegedRole(client, owner, password));
  }
}

const RENAME_ATTEMPTS = 5;
/** Bytes a psql session's input may hold queued in this process (see startPsqlSession). */
const SESSION_QUEUE_BYTES = 8 * 1024 * 1024;

/**
 * Ends the client sessions on these databases that this role may end (its own roles', or any
 * as a superuser): asking for others raises an error. Autovacuum workers are left alone;
 * RENAME and DROP DATABASE stop them themselves.
 */
async function terminate(client: pg.Client, databases: string[]): Promise<number> {
  const { rows } = await client.query<{ terminated: boolean }>(
    `SELECT pg_terminate_backend(a.pid) AS terminated FROM pg_stat_activity a
     WHERE a.datname = ANY($1) AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
       AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR pg_has_role(a.usesysid, 'USAGE'))`,
    [databases],
  );
  return rows.filter((row) => row.terminated).length;
}

/** The instance database as pg_database has it, and what the connecting role may do. */
export interface StagingFacts {
  owner: string;
  encoding: string;
  collate: string;
  ctype: string;
  connectionLimit: number;
  tablespace: string;
  /** c (libc), i (ICU) or b (builtin, PostgreSQL 17+). */
  localeProvider: string;
  defaultPrivileges: boolean;
  isTemplate: boolean;
  hasSettings: boolean;
  hasComment: boolean;
  hasSecurityLabel: boolean;
  hasReplication: boolean;
  superuser: boolean;
  createDb: boolean;
  /** The role may act as the database's owner (RENAME, DROP, CREATE DATABASE ... OWNER). */
  ownerMember: boolean;
  serverMajor: number;
  /** The database the admin session connected to (postgres or template1). */
  adminDatabase: string;
}

/** "psql:<stdin>:424: ERROR:  ..." → "line 422 of the dump: ERROR:  ..." (the \restrict line and the prelude come first). */
function describePsqlError(stderr: string, linesBefore = 2): string {
  const lines = stderr.trim().split('\n');
  const at = lines.findIndex((line) => /^psql:<stdin>:\d+: (ERROR|FATAL)/.test(line));
  const relevant = (at >= 0 ? lines.slice(at, at + 4) : lines.slice(-4)).filter((line) => !/^LINE \d+:|^\s*\^\s*$/.test(line));
  return relevant
    .map((line) => line.replace(/^psql:<stdin>:(\d+): /, (_match, n) => (!linesBefore ? '' : Number(n) > linesBefore ? `line ${Number(n) - linesBefore} of the dump: ` : '')))
    .join('\n')
    .trim();
}
