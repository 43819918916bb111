import { randomBytes } from 'node:crypto';
import type { Config } from '../config';
import type { ConnectionOptions } from '../db/connection';
import type { Database } from '../db/database';
import { canLogIn, roleNames, type DatabaseProperties } from '../db/roles';
import type { RestoreRepository } from '../repositories/restore.repository';
import { conflict } from '../errors';
import type { RestoreLog } from './restore-log';

/**
 * Who psql logs in as to run a dump. The dump is untrusted: it runs as a role that cannot reach
 * the server's files or programs or change roles, so PostgreSQL itself refuses what it must not do.
 * - With an administrator and a staged database: a restore role made for this restore (random
 *   password, dropped afterwards) that owns the new database; what it made is handed to the
 *   instance database's owner after the load.
 * - In place, or without an administrator: the app's own role, when it is unprivileged.
 * - Otherwise only with RESTORE_ALLOW_PRIVILEGED=true, said in the log of each restore.
 */
export class DumpLogin {
  private constructor(
    private readonly deps: { config: Config; db: Database; repository: RestoreRepository },
    /** psql's login (its database is set per load). */
    readonly connection: ConnectionOptions,
    /** The role made for this restore, dropped by release(). */
    readonly temporary: boolean,
    /** A superuser or otherwise privileged login, allowed by RESTORE_ALLOW_PRIVILEGED. */
    readonly privileged: boolean,
  ) {}

  /** A superuser's login (allowed by RESTORE_ALLOW_PRIVILEGED): DROP OWNED cannot clear its objects. */
  get superuser(): boolean {
    return this.privileged && (this.connection === this.deps.db.admin || this.deps.db.access.appPrivileges.includes('superuser'));
  }

  get role(): string {
    return this.connection.user;
  }

  /** Before maintenance mode: refuses when no unprivileged login will be had (400-style ServiceError). */
  static precheck(config: Config, db: Database): void {
    if (db.admin || !db.access.appPrivileges.length || config.restoreAllowPrivileged) return;
    throw privilegedRefusal(db.connection.user, db.access.appPrivileges);
  }

  /** The login for a restore into a staged database (`staged`) or in place (null). */
  static async forRestore(deps: { config: Config; db: Database; repository: RestoreRepository }, staged: boolean, log: RestoreLog): Promise<DumpLogin> {
    const { db, config } = deps;
    if (staged && db.admin) {
      const role = roleNames(db.connection.database).restore;
      const password = randomBytes(24).toString('base64url');
      await deps.repository.createRestoreRole(db.admin, role, password);
      return new DumpLogin(deps, { ...db.admin, user: role, password }, true, false);
    }
    const privileges = db.access.appPrivileges;
    if (!privileges.length) return new DumpLogin(deps, db.connection, false, false);
    if (!config.restoreAllowPrivileged) throw privilegedRefusal(db.connection.user, privileges);
    await log.info(`RESTORE_ALLOW_PRIVILEGED=true: the dump runs as "${db.connection.user}" (${privileges.join(', ')}); only restore files you trust completely`);
    return new DumpLogin(deps, db.connection, false, true);
  }

  /**
   * The restore role can log in to `database` (pg_hba.conf may refuse it on an external server).
   * If not, the restore stops here, unless RESTORE_ALLOW_PRIVILEGED lets the administrator run it.
   */
  async verify(database: string, log: RestoreLog): Promise<DumpLogin> {
    if (!this.temporary) return this;
    const login = await canLogIn({ ...this.connection, database });
    if (login === true) {
      await log.info(`The dump runs as "${this.role}", a role made for this restore: no superuser, no CREATEDB or CREATEROLE, no access to the server's files or programs`);
      return this;
    }
    await this.release();
    const admin = this.deps.db.admin!;
    if (!this.deps.config.restoreAllowPrivileged) {
      throw conflict(
        `Restore refused: the restore role "${this.role}" cannot log in (${login}), and running the dump as the superuser "${admin.user}" would let ` +
          'a hostile file run programs on the database server, read its files or change its roles. Allow password logins for that role in pg_hba.conf, ' +
          'or set RESTORE_ALLOW_PRIVILEGED=true if you trust this file completely.',
      );
    }
    await log.info(`RESTORE_ALLOW_PRIVILEGED=true: the restore role cannot log in (${login}); the dump runs as the superuser "${admin.user}"`);
    return new DumpLogin(this.deps, admin, false, true);
  }

  /** After a staged load: everything in the new database becomes `owner`'s, as does the database, with the live one's properties. */
  async handOver(database: string, owner: string, properties: DatabaseProperties): Promise<void> {
    const admin = this.deps.db.admin;
    if (this.temporary && admin) await this.deps.repository.handOver(admin, database, this.role, owner, properties);
  }

  /**
   * Drops the restore role, once it owns nothing (the staged database dropped or handed over). A
   * failure is logged; the next restore replaces the role.
   */
  async release(log?: RestoreLog): Promise<void> {
    const admin = this.deps.db.admin;
    if (!this.temporary || !admin) return;
    await this.deps.repository.dropRole(admin, this.role).catch((error) => log?.info(`Could not drop the restore role "${this.role}" (${(error as Error).message}); the next restore replaces it`));
  }
}

function privilegedRefusal(user: string, privileges: string[]) {
  return conflict(
    `Restore refused: the dump would run as "${user}" (${privileges.join(', ')}), so a hostile file could run programs on the database server, ` +
      'read its files or change its roles. Give Lifeboat a database role that owns the database without these rights (DB_USERNAME), or a superuser it can ' +
      'use to make one, or set RESTORE_ALLOW_PRIVILEGED=true if you trust every file you restore.',
  );
}
