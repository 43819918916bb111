import { DEFAULT_SYSTEM_CONFIG, validateBackupSettings } from '../../shared/cron-schedule';
import type { BackupSettings, SystemConfig } from '../../shared/types';
import type { SystemMetadataRepository } from '../repositories/system-metadata.repository';
import { badRequest } from './errors';

export const SYSTEM_CONFIG_KEY = 'system-config';

type Listener = (config: SystemConfig) => void;

/** Stored values over the defaults, so a config saved by an older version gains new keys. */
function merge(stored: unknown): SystemConfig {
  const database = (stored as { backup?: { database?: Partial<BackupSettings> } } | null)?.backup?.database ?? {};
  return { backup: { database: { ...DEFAULT_SYSTEM_CONFIG.backup.database, ...database } } };
}

/**
 * The system config (backup schedule and retention), kept in system_metadata like the
 * reference's. Every change is validated as a whole, saved, then announced, so the
 * scheduler picks it up without a restart.
 */
export class SystemConfigService {
  private readonly listeners = new Set<Listener>();

  constructor(private readonly metadata: SystemMetadataRepository) {}

  async get(): Promise<SystemConfig> {
    return merge(await this.metadata.get(SYSTEM_CONFIG_KEY));
  }

  /** Accepts a whole config or just the parts to change; nothing is saved unless all of it is valid. */
  async update(input: unknown): Promise<SystemConfig> {
    if (!input || typeof input !== 'object') throw badRequest('The system config must be a JSON object.');
    const current = await this.get();
    const patch = (input as { backup?: { database?: unknown } }).backup?.database;
    if (patch !== undefined && (patch === null || typeof patch !== 'object')) throw badRequest('"backup.database" must be an object.');
    const result = validateBackupSettings({ ...current.backup.database, ...(patch as object | undefined) });
    if ('errors' in result) throw badRequest(result.errors.join(' '));
    const next: SystemConfig = { backup: { database: result.settings } };
    await this.metadata.set(SYSTEM_CONFIG_KEY, next);
    for (const listener of this.listeners) listener(next);
    return next;
  }

  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
