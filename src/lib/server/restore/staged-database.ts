import { derivedNameBase } from '../db/roles';
import type { ConnectionOptions } from '../db/connection';
import type { RestoreRepository, StagingFacts } from '../repositories/restore.repository';
import type { RestoreLog } from './restore-log';
import type { ValidatedDump } from './validate-backup';

/**
 * A staged restore: the backup goes into a new database beside the live one, which stays
 * untouched; only once it is complete are the two swapped by name, in one transaction.
 * Dropping the old data is then outside the restore (as it is for a restore into an empty
 * server), and a rollback after the swap (migrations or health check failed) is a swap back.
 */
export class StagedDatabase {
  readonly staged: string;
  readonly replaced: string;
  private readonly failed: string;
  private swapped = false;

  constructor(
    private readonly repository: RestoreRepository,
    private readonly connection: ConnectionOptions,
  ) {
    const names = stagingNames(connection.database);
    this.staged = names.staged;
    this.replaced = names.replaced;
    this.failed = names.failed;
  }

  /** True once the restored database carries the instance's name. */
  get isSwappedIn(): boolean {
    return this.swapped;
  }

  /** Removes what an interrupted restore may have left, then creates the empty database to restore into, owned by `owner`. */
  async create(facts: StagingFacts, owner: string): Promise<void> {
    for (const name of [this.staged, this.replaced, this.failed]) await this.drop(name);
    await this.repository.createDatabaseLike(this.connection, this.staged, facts, owner);
  }

  /** The restored database takes the instance's name; the previous one is kept aside until dropReplaced or swapBack. */
  async swapIn(): Promise<void> {
    const live = this.connection.database;
    await this.rename([
      [live, this.replaced],
      [this.staged, live],
    ]);
    this.swapped = true;
  }

  /** After a failure before the swap: the half-made database goes; the live one was never touched. */
  async discard(): Promise<void> {
    await this.drop(this.staged);
  }

  /** The previous database gets its name back; the restored one is dropped (or by the next restore). */
  async swapBack(): Promise<void> {
    const live = this.connection.database;
    await this.rename([
      [live, this.failed],
      [this.replaced, live],
    ]);
    this.swapped = false;
    // A session of the app's that was closing as the names changed can still hold the restored
    // database for a moment: try again briefly; if it still fails, the next restore drops it.
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        return await this.drop(this.failed);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }

  async dropReplaced(): Promise<void> {
    await this.drop(this.replaced);
  }

  /** Only ever one of the staging names: never the instance's own (see cannotStage). */
  private async drop(name: string): Promise<void> {
    if (name === this.connection.database) throw new Error(`Refusing to drop the instance database "${name}"`);
    await this.repository.dropDatabase(this.connection, name);
  }

  /** Two renames in one transaction: a chain, so the first one's old name is the last one's new name. */
  private async rename(renames: Array<[from: string, to: string]>): Promise<void> {
    try {
      await this.repository.renameDatabases(this.connection, renames);
    } catch (error) {
      // The connection may have been lost after the server committed: the names say what happened.
      const [[first, aside], [incoming]] = renames;
      if (!(await this.namesAre({ present: [first, aside], absent: [incoming] }))) throw error;
    }
  }

  private async namesAre(expected: { present: string[]; absent: string[] }): Promise<boolean> {
    try {
      for (const name of expected.present) if (!(await this.repository.databaseExists(this.connection, name))) return false;
      for (const name of expected.absent) if (await this.repository.databaseExists(this.connection, name)) return false;
      return true;
    } catch {
      return false;
    }
  }
}

const SUFFIXES = { staged: '__lifeboat_restoring', replaced: '__lifeboat_replaced', failed: '__lifeboat_failed' } as const;

/** Fixed per instance database, so that what a crash leaves behind is found and removed by the next restore. */
export function stagingNames(database: string): { staged: string; replaced: string; failed: string } {
  const base = derivedNameBase(database);
  return { staged: `${base}${SUFFIXES.staged}`, replaced: `${base}${SUFFIXES.replaced}`, failed: `${base}${SUFFIXES.failed}` };
}

/** Why the restore cannot be staged, or null when it can: then nothing the dump does not hold is lost by the swap. */
export function cannotStage(facts: StagingFacts | null, dump: ValidatedDump, database: string): string | null {
  if (!facts) return `the database "${database}" was not found`;
  // A database that itself carries a staging name (say, one kept aside, then used): its names could meet the instance's.
  const names = stagingNames(database);
  if (Object.values(SUFFIXES).some((suffix) => database.endsWith(suffix)) || Object.values(names).includes(database)) {
    return `the database name "${database}" looks like one a staged restore makes`;
  }
  if (!facts.superuser && !(facts.createDb && facts.ownerMember)) return 'the database role may not create databases (CREATEDB) or does not own this one';
  if (facts.adminDatabase === database || facts.isTemplate) return `"${database}" is a system database`;
  if (facts.localeProvider !== 'c') return 'the database uses an ICU or builtin locale';
  // Before 15, template0's public schema belongs to the bootstrap superuser: the schema reset would fail.
  if (facts.serverMajor < 15 && !facts.superuser) return 'before PostgreSQL 15 only a superuser can reset the public schema of a new database';
  if (facts.hasReplication) return 'the database has replication slots or subscriptions, which stay with it';
  if (!facts.defaultPrivileges || facts.hasSettings || facts.hasComment || facts.hasSecurityLabel) {
    return 'the database has its own privileges, settings, comment or security label, which a new database would not have';
  }
  return null;
}

/** Staged when nothing would be lost by it (null reason), else in place (one transaction in the live database). */
export async function stagingDecision(repository: RestoreRepository, connection: ConnectionOptions, dump: ValidatedDump): Promise<{ facts: StagingFacts | null; reason: string | null }> {
  try {
    const facts = await repository.stagingFacts(connection);
    return { facts, reason: cannotStage(facts, dump, connection.database) };
  } catch (error) {
    return { facts: null, reason: `the database could not be inspected: ${(error as Error).message}` };
  }
}
