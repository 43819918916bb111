import { SetupCodeRepository } from '../repositories/setup-code.repository';
import type { AuthService, AuthUser, NewUser } from './auth.service';
import type { DatabaseBackupService } from './database-backup.service';
import { badRequest, conflict, forbidden, unauthorized } from '../errors';
import type { MaintenanceService } from './maintenance.service';
import { generateSetupCode, isSetupCode, setupCodeMatches } from './setup-code';

export interface FirstRunDeps {
  auth: Pick<AuthService, 'hasAdmin' | 'adminSignUp'>;
  maintenance: Pick<MaintenanceService, 'isRunning' | 'start'>;
  backups: Pick<DatabaseBackupService, 'listBackups' | 'backupsFolder'>;
  /** Where the code is kept: UPLOAD_LOCATION/.lifeboat/setup-code. */
  codeFile: string;
  log: (line: string) => void;
}

/**
 * The two ways to take an instance that has no admin yet: sign up as its admin, or enter
 * maintenance mode (the first-run wizard's token) to list, download, upload and restore backups.
 *
 * On a brand-new, empty install anyone may, as on the reference server. But when
 * UPLOAD_LOCATION/backups already holds backups (a reinstall over an old library), both need
 * the setup code the server prints in its log and keeps in a file only its user may read:
 * whoever has that has the machine, so the old instance's data is theirs to see. Every later
 * wizard request rides on the maintenance token, so this is the one gate. Once an admin
 * exists the code opens nothing and its file is removed.
 */
export class FirstRunService {
  private code: Promise<string> | null = null;

  constructor(
    private readonly deps: FirstRunDeps,
    private readonly codes = new SetupCodeRepository(),
  ) {}

  get setupCodeFile(): string {
    return this.deps.codeFile;
  }

  /** At start (the web server's init hook): prints the code when one is needed. */
  async announce(): Promise<void> {
    // A restore run by the command line may hold the database: the code is made when first asked for.
    if (this.deps.maintenance.isRunning()) return;
    try {
      if (await this.isRequired()) await this.ensureCode();
    } catch (error) {
      this.deps.log(`Could not tell whether a setup code is needed (it is checked again on each sign-up or restore): ${(error as Error).message}`);
    }
  }

  /** No admin yet, and backups in the folder. Once an admin exists the code's file is removed. */
  async isRequired(): Promise<boolean> {
    if (await this.adminExists()) {
      await this.retire();
      return false;
    }
    return this.hasBackups();
  }

  /** For the pages that ask for the code: where to find it, or null when none is needed. */
  async prompt(): Promise<{ file: string } | null> {
    if (!(await this.isRequired())) return null;
    await this.ensureCode();
    return { file: this.deps.codeFile };
  }

  /** Admin sign-up: 400 once an admin exists (whatever the code), else the code when one is needed. */
  async signUpAdmin(input: NewUser, setupCode: unknown): Promise<AuthUser> {
    if (await this.isRequired()) await this.checkCode(setupCode);
    const user = await this.deps.auth.adminSignUp(input);
    await this.retire();
    return user;
  }

  /** "Restore from backup" on the Welcome page: the maintenance token for this browser. */
  async startRestore(setupCode: unknown): Promise<string> {
    // While a restore replaces the database, asking it about admins would wait on its locks.
    if (this.deps.maintenance.isRunning()) throw conflict('A restore is already running');
    if (await this.adminExists()) throw badRequest('Admin setup is not available');
    if (await this.hasBackups()) await this.checkCode(setupCode);
    return this.deps.maintenance.start('start', 'the first-run wizard');
  }

  private async checkCode(given: unknown): Promise<void> {
    const expected = await this.ensureCode();
    const where = `Enter the setup code printed in the server log at start, or found in ${this.deps.codeFile}.`;
    if (typeof given !== 'string' || !given.trim()) throw unauthorized(`This server's library already holds backups. ${where}`);
    if (!setupCodeMatches(given, expected)) throw forbidden(`That setup code is not right. ${where}`);
  }

  /** The code of this instance: the one in its file if sound, else a new one; printed once per process. */
  private ensureCode(): Promise<string> {
    this.code ??= this.loadOrMake().catch((error) => {
      this.code = null;
      throw error;
    });
    return this.code;
  }

  private async loadOrMake(): Promise<string> {
    const { codeFile, backups, log } = this.deps;
    const stored = await this.codes.read(codeFile);
    // Kept across restarts, so the code in an earlier log line still works; not if others could read the file.
    let code = stored && isSetupCode(stored.text) && (stored.mode & 0o077) === 0 ? stored.text : null;
    if (!code) {
      code = generateSetupCode();
      await this.codes.write(codeFile, code);
    }
    log(
      `Setup code: ${code} (no admin exists yet and ${backups.backupsFolder} holds backups: creating the admin or restoring a backup ` +
        `from the Welcome page needs this code; it is also in ${codeFile}, readable by this server's user only)`,
    );
    return code;
  }

  private async retire(): Promise<void> {
    this.code = null;
    if (await this.codes.remove(this.deps.codeFile)) this.deps.log('Setup code removed: an admin exists');
  }

  /** A database without the users table (not migrated yet) has no admin either. */
  private adminExists(): Promise<boolean> {
    return this.deps.auth.hasAdmin().catch((error: { code?: string }) => {
      if (error.code === '42P01') return false;
      throw error;
    });
  }

  private async hasBackups(): Promise<boolean> {
    return (await this.deps.backups.listBackups()).length > 0;
  }
}
