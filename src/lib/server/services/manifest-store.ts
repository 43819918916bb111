import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { isValidBackupName } from '../../shared/backup-name';
import { backupOfManifest, isManifestName, manifestName, parseManifest, type BackupManifest } from '../backup/manifest';
import type { StorageRepository } from '../repositories/storage.repository';

/**
 * The manifests beside the backups in backups/. Updates of one manifest are serialized in this
 * process (a verification and a drill may finish at the same moment), each a write-then-rename.
 */
export class ManifestStore {
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly storage: StorageRepository,
    readonly folder: string,
  ) {}

  path(filename: string): string {
    return join(this.folder, manifestName(filename));
  }

  /** The manifest of a backup; null when it has none (or an unreadable one, which verification replaces). */
  async read(filename: string): Promise<BackupManifest | null> {
    try {
      return parseManifest(await this.storage.readJson(this.path(filename)), filename);
    } catch {
      return null;
    }
  }

  async write(manifest: BackupManifest): Promise<void> {
    // A hidden temporary name: never taken for a backup or a manifest while it is written.
    await this.storage.writeJsonAtomic(this.path(manifest.filename), manifest, join(this.folder, `.manifest-${randomBytes(6).toString('hex')}.tmp`));
  }

  /** Read, change and write one manifest, after any other update of it; nothing when there is none. */
  update(filename: string, change: (manifest: BackupManifest) => BackupManifest | void): Promise<BackupManifest | null> {
    const previous = this.queues.get(filename) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(async () => {
        const manifest = await this.read(filename);
        if (!manifest) return null;
        const changed = change(manifest) ?? manifest;
        await this.write(changed);
        return changed;
      });
    this.queues.set(filename, next);
    void next.finally(() => {
      if (this.queues.get(filename) === next) this.queues.delete(filename);
    }).catch(() => undefined);
    return next;
  }

  /** Removes a backup's manifest (deleting or pruning the backup). */
  remove(filename: string): Promise<void> {
    return this.storage.removeIfExists(this.path(filename));
  }

  /** Manifests whose backup is gone (a crash between the two removals, a file deleted by hand): removed. */
  async removeOrphans(entries: string[]): Promise<string[]> {
    const names = new Set(entries);
    const orphans = entries.filter((name) => isManifestName(name) && isValidBackupName(backupOfManifest(name)) && !names.has(backupOfManifest(name)));
    for (const name of orphans) await this.storage.removeIfExists(join(this.folder, name));
    return orphans;
  }
}
