import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isValidBackupName, parseBackupName } from '../../shared/backup-name';
import { validateOffsite } from '../../shared/settings-rules';
import type { BackupFile, OffsiteCopyStatus, OffsiteSettings } from '../../shared/types';
import { MANIFEST_SUFFIX, NO_DRILL, parseManifest, UNVERIFIED } from '../backup/manifest';
import { S3Repository, type RemoteObject } from '../repositories/s3.repository';
import type { StorageRepository } from '../repositories/storage.repository';
import type { DatabaseBackupService } from './database-backup.service';
import { badRequest, conflict, notFound, ServiceError } from '../errors';
import type { FileUse } from './file-use';
import type { SystemConfigService } from './system-config.service';

interface CopyRecord {
  status: 'copied' | 'pending' | 'failed';
  at: string | null;
  error: string | null;
  sha256?: string;
}

type CopyState = Record<string, CopyRecord>;

export interface OffsiteTestStep {
  step: 'settings' | 'list' | 'write' | 'read' | 'delete';
  ok: boolean;
  message: string;
}

export interface OffsiteTestResult {
  ok: boolean;
  steps: OffsiteTestStep[];
}

export interface OffsiteServiceDeps {
  systemConfig: SystemConfigService;
  backups: DatabaseBackupService;
  storage: StorageRepository;
  fileUse: FileUse;
  stateDir: string;
  log: (line: string) => void;
  logError: (line: string) => void;
  /** An off-site copy failed after its retries (the alert). Never awaited by the copy. */
  onCopyFailed?: (filename: string, error: string) => void;
}

export const SHA256_SUFFIX = '.sha256';
const REMOTE_CACHE_MS = 30_000;

/** Passes bytes through and hashes them on the way (the SHA-256 is known when the stream ends). */
class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

/** S3 and network failures in words an admin can act on. The secret is never part of them. */
export function explainS3Error(error: unknown, settings: OffsiteSettings): string {
  const e = error as { name?: string; Code?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number }; cause?: { code?: string } };
  const name = e?.Code ?? e?.name ?? '';
  const code = e?.code ?? e?.cause?.code ?? '';
  const where = settings.endpoint || 'Amazon S3';
  if (name === 'InvalidAccessKeyId') return `The access key ID "${settings.accessKeyId}" is not known to ${where}: check it in the storage provider's console.`;
  if (name === 'SignatureDoesNotMatch') return 'The secret access key is wrong (the storage refused the request signature): enter it again.';
  if (name === 'NoSuchBucket') return `The bucket "${settings.bucket}" does not exist at ${where}: create it first, or check its name.`;
  if (name === 'AccessDenied' || e?.$metadata?.httpStatusCode === 403) return `Access denied by ${where}: the key may not list, write or delete objects in "${settings.bucket}". Give it read, write and delete permission on the bucket.`;
  if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed') return `Wrong region "${settings.region}" for the bucket "${settings.bucket}": use the bucket's region.`;
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH'].includes(code) || /ECONNREFUSED|ENOTFOUND|getaddrinfo/.test(e?.message ?? '')) {
    return `Cannot reach ${where} (${code || e?.message}): check the endpoint URL and that the server is running.`;
  }
  return `${name && name !== 'Error' ? `${name}: ` : ''}${e?.message ?? String(error)}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Off-site copies of routine backups in an S3-compatible bucket. After each successful backup
 * the file is streamed to `prefix/name` (multipart, bounded memory), its SHA-256 computed on
 * the way and stored beside it as `name.sha256`; failures are retried and then reported. The
 * bucket keeps its own count. Copies run one at a time in the background: the backup job
 * never waits for them, and a copy status is kept in a file beside the job history.
 */
export class OffsiteService {
  private state: CopyState | null = null;
  private queue: Promise<void> = Promise.resolve();
  private writes: Promise<void> = Promise.resolve();
  private remote: { at: number; objects: RemoteObject[] | null; prefix: string } | null = null;
  private readonly controller = new AbortController();
  /** Attempts per copy and the first wait between them (doubled each time); tests shorten the wait. */
  retry = { attempts: 3, delayMs: 5_000 };

  constructor(private readonly deps: OffsiteServiceDeps) {}

  private get file(): string {
    return join(this.deps.stateDir, 'offsite-copies.json');
  }

  private async load(): Promise<CopyState> {
    this.state ??= (await this.deps.storage.readJson<CopyState>(this.file).catch(() => null)) ?? {};
    return this.state;
  }

  /** null forgets the file (its copy left the bucket). */
  private async record(filename: string, record: CopyRecord | null): Promise<void> {
    const state = await this.load();
    if (record) state[filename] = record;
    else delete state[filename];
    const write = this.writes.then(() => this.deps.storage.writeJsonAtomic(this.file, state));
    this.writes = write.catch((error) => this.deps.logError(`Could not save the off-site copy status: ${(error as Error).message}`));
    await this.writes;
  }

  private static keyFor(settings: OffsiteSettings, name: string): string {
    return settings.prefix ? `${settings.prefix}/${name}` : name;
  }

  /** After a successful backup: queues its copy when off-site copies are on. Resolves when it is queued, not copied. */
  async enqueue(filename: string): Promise<void> {
    const queued = (async () => {
      if (!(await this.deps.systemConfig.get()).backup.offsite.enabled) return false;
      await this.record(filename, { status: 'pending', at: new Date().toISOString(), error: null });
      return true;
    })();
    // Chained at once, so idle() right after a backup's end already waits for this copy.
    this.queue = this.queue.then(async () => {
      if (await queued.catch(() => false)) await this.copyWithRetries(filename);
    });
    await queued;
  }

  /** Settles when every queued copy has finished (tests, shutdown). */
  idle(): Promise<void> {
    return this.queue;
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.queue;
    await this.writes;
  }

  private async copyWithRetries(filename: string): Promise<void> {
    const settings = (await this.deps.systemConfig.get()).backup.offsite;
    const { attempts, delayMs } = this.retry;
    const release = this.deps.fileUse.acquire(filename, 'off-site copy');
    let lastError = '';
    try {
      for (let attempt = 1; attempt <= attempts && !this.controller.signal.aborted; attempt++) {
        try {
          const sha256 = await this.copy(settings, filename);
          await this.record(filename, { status: 'copied', at: new Date().toISOString(), error: null, sha256 });
          this.deps.log(`Off-site copy of ${filename} done (${OffsiteService.keyFor(settings, filename)} in bucket ${settings.bucket}, SHA-256 ${sha256})`);
          await this.applyRemoteRetention(settings).catch((error) => this.deps.logError(`Off-site retention failed: ${explainS3Error(error, settings)}`));
          return;
        } catch (error) {
          lastError = (error as NodeJS.ErrnoException).code === 'ENOENT' ? `The local file ${filename} is gone.` : explainS3Error(error, settings);
          this.deps.logError(`Off-site copy of ${filename} failed (attempt ${attempt} of ${attempts}): ${lastError}`);
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') break;
          if (attempt < attempts) await sleep(delayMs * 2 ** (attempt - 1));
        }
      }
      if (this.controller.signal.aborted) lastError ||= 'Cancelled: the server is shutting down.';
      const tries = lastError.includes('is gone') ? '' : ` (tried ${attempts} times)`;
      lastError = `${lastError}${tries}`;
      await this.record(filename, { status: 'failed', at: new Date().toISOString(), error: lastError });
      this.deps.onCopyFailed?.(filename, lastError);
    } catch (error) {
      this.deps.logError(`Off-site copy of ${filename}: ${(error as Error).message}`);
    } finally {
      release();
      this.remote = null;
    }
  }

  /** One attempt: the file, then its SHA-256 beside it (and the manifest, when there is one). */
  private async copy(settings: OffsiteSettings, filename: string): Promise<string> {
    const repository = new S3Repository(settings);
    try {
      const path = join(this.deps.backups.backupsFolder, filename);
      const hashing = new HashingStream();
      const source = this.deps.storage.createReadStream(path);
      const piping = pipeline(source, hashing);
      const key = OffsiteService.keyFor(settings, filename);
      const uploading = repository.upload(key, hashing, { signal: this.controller.signal, contentType: filename.endsWith('.gz') ? 'application/gzip' : 'application/sql' }).catch((error) => {
        // A failed upload stops reading: the file is closed and the pipeline settles.
        hashing.destroy(error);
        throw error;
      });
      const [uploaded] = await Promise.allSettled([uploading, piping]);
      if (uploaded.status === 'rejected') throw uploaded.reason;
      await piping;
      const sha256 = hashing.digest();
      await repository.putText(key + SHA256_SUFFIX, `${sha256}  ${filename}\n`);
      const manifest = `${path}${MANIFEST_SUFFIX}`;
      if (await this.deps.storage.exists(manifest)) {
        await repository.upload(key + MANIFEST_SUFFIX, this.deps.storage.createReadStream(manifest), { contentType: 'application/json' });
      }
      return sha256;
    } finally {
      repository.close();
    }
  }

  /** The bucket keeps the newest `keepLastAmount` routine backups; each removal is logged. */
  private async applyRemoteRetention(settings: OffsiteSettings): Promise<string[]> {
    const repository = new S3Repository(settings);
    try {
      const backups = this.backupObjects(settings, await repository.list(this.listPrefix(settings)))
        .filter(({ name }) => parseBackupName(name).kind === 'routine')
        .sort((a, b) => sortTime(b.name, b.object) - sortTime(a.name, a.object) || b.name.localeCompare(a.name));
      const doomed = backups.slice(settings.keepLastAmount);
      for (const { name, object } of doomed) {
        await repository.delete(object.key);
        await repository.delete(object.key + SHA256_SUFFIX);
        await repository.delete(object.key + MANIFEST_SUFFIX);
        await this.record(name, null);
        this.deps.log(`Off-site retention (keep ${settings.keepLastAmount}) removed ${object.key} from bucket ${settings.bucket}`);
      }
      return doomed.map(({ name }) => name);
    } finally {
      repository.close();
    }
  }

  private listPrefix(settings: OffsiteSettings): string {
    return settings.prefix ? `${settings.prefix}/` : '';
  }

  /** Backup files directly under the prefix (not the .sha256 sidecars, not deeper folders). */
  private backupObjects(settings: OffsiteSettings, objects: RemoteObject[]): Array<{ name: string; object: RemoteObject }> {
    const prefix = this.listPrefix(settings);
    return objects
      .map((object) => ({ name: object.key.slice(prefix.length), object }))
      .filter(({ name, object }) => object.key.startsWith(prefix) && isValidBackupName(name) && !name.includes('/'));
  }

  /** The bucket's listing, cached briefly so the backup list stays fast; null when off or unreachable. */
  private async remoteBackups(settings: OffsiteSettings): Promise<Array<{ name: string; object: RemoteObject }> | null> {
    if (!settings.enabled) return null;
    const prefix = `${settings.endpoint}|${settings.bucket}|${settings.prefix}`;
    if (!this.remote || this.remote.prefix !== prefix || Date.now() - this.remote.at > REMOTE_CACHE_MS) {
      const repository = new S3Repository(settings);
      try {
        const objects = await withTimeout(repository.list(this.listPrefix(settings)), 5_000);
        this.remote = { at: Date.now(), objects, prefix };
      } catch (error) {
        this.deps.logError(`Could not list the off-site bucket: ${explainS3Error(error, settings)}`);
        // Remembered as unreachable for a while too, so the list does not wait on every refresh.
        this.remote = { at: Date.now(), objects: null, prefix };
      } finally {
        repository.close();
      }
    }
    return this.remote.objects ? this.backupObjects(settings, this.remote.objects) : null;
  }

  /** The backup list: local files with their off-site status, and the backups that exist only off-site. */
  async listBackups(): Promise<BackupFile[]> {
    const [local, config, state] = await Promise.all([this.deps.backups.listBackups(), this.deps.systemConfig.get(), this.load()]);
    const settings = config.backup.offsite;
    const remote = await this.remoteBackups(settings);
    const remoteByName = new Map((remote ?? []).map((entry) => [entry.name, entry.object]));
    const files: BackupFile[] = local.map((file) => {
      const inBucket = remoteByName.has(file.filename);
      const record = state[file.filename];
      let offsite: OffsiteCopyStatus;
      if (inBucket && record?.status !== 'pending') offsite = { status: 'copied', at: record?.status === 'copied' ? record.at : (remoteByName.get(file.filename)?.lastModified?.toISOString() ?? null), error: null };
      else if (record && settings.enabled) offsite = { status: record.status, at: record.at, error: record.error };
      else offsite = { status: 'off', at: null, error: null };
      return { ...file, offsite, location: inBucket ? 'both' : 'local' };
    });
    const localNames = new Set(local.map((file) => file.filename));
    for (const [name, object] of remoteByName) {
      if (localNames.has(name)) continue;
      const info = parseBackupName(name);
      files.push({
        filename: name,
        filesize: object.size,
        createdAt: (info.createdAt ?? object.lastModified ?? new Date(0)).toISOString(),
        version: info.version,
        // Off-site the contents are not read: the name is all there is.
        versionSource: info.version ? 'name' : null,
        postgresVersion: info.postgresVersion,
        kind: info.kind,
        offsite: { status: 'copied', at: object.lastModified?.toISOString() ?? null, error: null },
        location: 'offsite',
      });
    }
    return files.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.filename.localeCompare(a.filename));
  }

  /**
   * Brings an off-site-only backup back into the backups folder: streamed to a .tmp, its
   * SHA-256 compared with the one stored beside it, and only then renamed into place, so a
   * restore can only ever see a checked file.
   */
  async fetch(filename: unknown): Promise<{ filename: string; sha256: string; filesize: number }> {
    if (!isValidBackupName(filename)) throw badRequest('Invalid backup name: use a plain file name ending in .sql or .sql.gz');
    const settings = (await this.deps.systemConfig.get()).backup.offsite;
    if (!settings.enabled) throw badRequest('Off-site copies are turned off: turn them on in Settings > Backup first.');
    const path = join(this.deps.backups.backupsFolder, filename);
    if (await this.deps.storage.exists(path)) throw conflict(`${filename} is already in the backups folder.`);
    const key = OffsiteService.keyFor(settings, filename);
    const repository = new S3Repository(settings);
    const release = this.deps.fileUse.acquire(filename, 'fetch from off-site');
    const tmp = `${path}.fetch.tmp`;
    try {
      const sidecar = await repository.getText(key + SHA256_SUFFIX).catch((error) => {
        throw new ServiceError(503, `Cannot read the off-site copy: ${explainS3Error(error, settings)}`);
      });
      const expected = sidecar?.trim().split(/\s+/)[0]?.toLowerCase() ?? null;
      if (!expected || !/^[0-9a-f]{64}$/.test(expected)) {
        if (!(await repository.exists(key).catch(() => false))) throw notFound(`${filename} is not in the off-site bucket.`);
        throw conflict(`The off-site copy of ${filename} has no SHA-256 beside it (${key}${SHA256_SUFFIX}), so it cannot be checked. Download it from the bucket by hand if you trust it.`);
      }
      const { body } = await repository.download(key, this.controller.signal).catch((error) => {
        throw new ServiceError(503, `Cannot download the off-site copy: ${explainS3Error(error, settings)}`);
      });
      const hashing = new HashingStream();
      await this.deps.storage.removeIfExists(tmp);
      await pipeline(body, hashing, this.deps.storage.createWriteStream(tmp));
      const actual = hashing.digest();
      if (actual !== expected) {
        throw conflict(`The off-site copy of ${filename} is damaged: its SHA-256 is ${actual}, but ${expected} was recorded when it was copied. It was not kept; nothing else changed.`);
      }
      await this.deps.storage.fsync(tmp);
      await this.deps.storage.rename(tmp, path);
      await this.deps.storage.fsyncDir(this.deps.backups.backupsFolder);
      await this.record(filename, { status: 'copied', at: new Date().toISOString(), error: null, sha256: actual });
      await this.fetchManifest(repository, key, filename, actual);
      this.deps.log(`Fetched ${filename} back from the off-site bucket (${hashing.bytes} bytes, SHA-256 checked)`);
      return { filename, sha256: actual, filesize: hashing.bytes };
    } finally {
      await this.deps.storage.removeIfExists(tmp).catch(() => undefined);
      release();
      repository.close();
    }
  }

  /** The manifest copied beside the backup, when there is one and it describes the very bytes fetched; else the file's first verification makes one. */
  private async fetchManifest(repository: S3Repository, key: string, filename: string, sha256: string): Promise<void> {
    try {
      const text = await repository.getText(key + MANIFEST_SUFFIX);
      const manifest = text ? parseManifest(JSON.parse(text), filename) : null;
      if (manifest && manifest.sha256 === sha256) await this.deps.backups.manifests.write({ ...manifest, verification: { ...UNVERIFIED, sha256 }, drill: NO_DRILL });
    } catch (error) {
      this.deps.logError(`The manifest of ${filename} was not fetched: ${(error as Error).message}`);
    }
  }

  /**
   * "Test connection": lists the bucket, writes, reads back and deletes a small object, and
   * says which step failed and why. `input` is the form's (unsaved) settings; an empty secret
   * means the stored one.
   */
  async test(input?: unknown): Promise<OffsiteTestResult> {
    const stored = (await this.deps.systemConfig.get()).backup.offsite;
    const candidate = input && typeof input === 'object' ? { ...stored, ...(input as object), enabled: true } : { ...stored, enabled: true };
    const secret = (candidate as { secretAccessKey?: unknown }).secretAccessKey;
    if (typeof secret !== 'string' || secret === '') candidate.secretAccessKey = stored.secretAccessKey;
    const checked = validateOffsite(candidate);
    if ('problems' in checked) {
      return { ok: false, steps: [{ step: 'settings', ok: false, message: checked.problems.map((p) => `${p.field}: ${p.message}`).join(' ') }] };
    }
    const settings = checked.settings;
    const steps: OffsiteTestStep[] = [{ step: 'settings', ok: true, message: 'The settings are complete.' }];
    const repository = new S3Repository(settings);
    const key = OffsiteService.keyFor(settings, `.lifeboat-test-${randomBytes(6).toString('hex')}`);
    const body = `Lifeboat connection test ${new Date().toISOString()}\n`;
    const run = async (step: OffsiteTestStep['step'], ok: string, fn: () => Promise<unknown>): Promise<boolean> => {
      try {
        await withTimeout(fn(), 15_000);
        steps.push({ step, ok: true, message: ok });
        return true;
      } catch (error) {
        steps.push({ step, ok: false, message: explainS3Error(error, settings) });
        return false;
      }
    };
    try {
      const ok =
        (await run('list', `Listed bucket "${settings.bucket}".`, () => repository.list(this.listPrefix(settings)))) &&
        (await run('write', `Wrote a test object (${key}).`, () => repository.putText(key, body))) &&
        (await run('read', 'Read it back unchanged.', async () => {
          const read = await repository.getText(key);
          if (read !== body) throw new Error('The object read back differs from the one written.');
        })) &&
        (await run('delete', 'Deleted the test object.', () => repository.delete(key)));
      return { ok, steps };
    } finally {
      repository.close();
    }
  }
}

function sortTime(name: string, object: RemoteObject): number {
  return parseBackupName(name).createdAt?.getTime() ?? object.lastModified?.getTime() ?? 0;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`No answer within ${ms / 1000} s`), { code: 'ETIMEDOUT' })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
