import { join } from 'node:path';
import type { StorageRepository } from '../repositories/storage.repository';

/** A staged restore's replaced database, kept as its restore point until it is saved to a file. */
export interface ReplacedRecord {
  database: string;
  /** The backup whose restore replaced it. */
  restored: string;
  replacedAt: string;
  /** The last failed try to save it, if any. */
  error?: string | null;
}

/**
 * The record of a replaced database not yet saved as a restore-point file, kept in a file of its
 * own (not in the maintenance status, which each maintenance session starts afresh) so that a
 * restart, even after kill -9, finds it and saves it, and no later restore drops it unsaved.
 */
export class ReplacedDatabaseRecord {
  private readonly file: string;

  constructor(
    private readonly storage: StorageRepository,
    stateDir: string,
  ) {
    this.file = join(stateDir, 'replaced-database.json');
  }

  read(): Promise<ReplacedRecord | null> {
    return this.storage.readJson<ReplacedRecord>(this.file).catch(() => null);
  }

  write(record: ReplacedRecord): Promise<void> {
    return this.storage.writeJsonAtomic(this.file, record);
  }

  clear(): Promise<void> {
    return this.storage.removeIfExists(this.file);
  }
}
