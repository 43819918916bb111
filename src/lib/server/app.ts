import { join } from 'node:path';
import type { Config } from './config';
import { Database } from './db/database';
import { migrate } from './db/migrator';
import { AssetRepository } from './repositories/asset.repository';
import { DumpRepository } from './repositories/dump.repository';
import { BackupReadRepository } from './repositories/backup-read.repository';
import { DrillRepository } from './repositories/drill.repository';
import { RestoreRepository } from './repositories/restore.repository';
import { StorageRepository } from './repositories/storage.repository';
import { SystemMetadataRepository } from './repositories/system-metadata.repository';
import { UserRepository } from './repositories/user.repository';
import { AssetService } from './services/asset.service';
import { AuthService } from './services/auth.service';
import { DatabaseBackupService } from './services/database-backup.service';
import { DrillService } from './services/drill.service';
import { VerificationService } from './services/verification.service';
import { FileUse } from './services/file-use';
import { FirstRunService } from './services/first-run.service';
import { JobService } from './services/job.service';
import { SystemConfigService } from './services/system-config.service';
import { OperationLock } from './services/operation-lock';
import { MaintenanceService } from './services/maintenance.service';
import { AlertWatch } from './services/alert-watch';
import { NotificationService } from './services/notification.service';
import { OffsiteService } from './services/offsite.service';
import { RetentionService } from './services/retention.service';
import { RestoreService } from './services/restore.service';
import { ServerInfoService } from './services/server-info.service';
import { StorageService } from './services/storage.service';
import { UserService } from './services/user.service';
import { LibraryContentsRepository } from './repositories/library-contents.repository';
import { LibraryFilesRepository } from './repositories/library-files.repository';
import { ConsistencyService } from './services/consistency.service';
import { PreviewService } from './services/preview.service';

export interface StartOptions {
  /** Tests run the embedded cluster without fsync. */
  fsync?: boolean;
  log?: (line: string) => void;
  /** The command line's restore migrates after restoring: a database this version cannot migrate must not stop it from starting. */
  skipMigrations?: boolean;
  /** The command line waits for a replaced database to be saved (see RestoreService.resume) before its command; the web server does it in the background. */
  awaitResume?: boolean;
}

/**
 * The composition root: one place that builds repositories and services from the config.
 * The web server (hooks.server.ts) and the command line both start the app through here.
 */
export class Lifeboat {
  readonly storageRepository = new StorageRepository();
  readonly storage: StorageService;
  readonly maintenance: MaintenanceService;
  readonly users: UserRepository;
  readonly metadata: SystemMetadataRepository;
  readonly assets: AssetRepository;
  readonly auth: AuthService;
  readonly assetService: AssetService;
  readonly userService: UserService;
  readonly serverInfo: ServerInfoService;
  /** The one lock for backups and restores. */
  readonly lock: OperationLock;
  readonly backups: DatabaseBackupService;
  readonly systemConfig: SystemConfigService;
  readonly jobs: JobService;
  /** Backup files being read (downloads, off-site copies): retention leaves them alone. */
  readonly fileUse = new FileUse();
  /** Off-site copies in an S3-compatible bucket. */
  readonly offsite: OffsiteService;
  /** Retention for routine backups, restore points and uploaded files. */
  readonly retention: RetentionService;
  /** Alerts by email and webhook. */
  readonly notifications: NotificationService;
  /** Alerts no job raises itself: stale backups (hourly) and the end of a restore. */
  readonly alertWatch: AlertWatch;
  readonly restore: RestoreService;
  /** Is each backup still what was written (SHA-256, whole gzip, end line)? After each backup and upload, nightly, and on demand. */
  readonly verification: VerificationService;
  /** Restore drills into a scratch database beside the live one: weekly, and on demand. */
  readonly drills: DrillService;
  /** Admin sign-up and the first-run wizard's token; the setup code on a reinstall over old backups. */
  readonly firstRun: FirstRunService;
  /** The files-vs-database report: after every restore, and on demand. */
  readonly consistency: ConsistencyService;
  /** What a backup holds beside the instance, before a restore. */
  readonly preview: PreviewService;
  private onboarded = false;
  private readonly shutdownHooks: Array<() => Promise<void> | void> = [];

  private constructor(
    readonly config: Config,
    readonly db: Database,
    readonly log: (line: string) => void,
  ) {
    this.storage = new StorageService(config.uploadLocation, this.storageRepository);
    const stateDir = join(config.uploadLocation, '.lifeboat');
    this.maintenance = new MaintenanceService(stateDir, this.storageRepository);
    this.lock = new OperationLock(stateDir);
    this.users = new UserRepository(db);
    this.metadata = new SystemMetadataRepository(db);
    this.assets = new AssetRepository(db);
    this.auth = new AuthService(this.users, this.storage);
    this.assetService = new AssetService(config.uploadLocation, this.assets, this.storageRepository);
    this.userService = new UserService(this.users, this.storage);
    this.backups = new DatabaseBackupService(config, db, new DumpRepository(config.igzip), this.storageRepository, this.storage.backupsFolder, this.fileUse);
    this.systemConfig = new SystemConfigService(this.metadata);
    const logError = (line: string) => console.error(`[lifeboat] ${line}`);
    this.notifications = new NotificationService({ systemConfig: this.systemConfig, storage: this.storageRepository, stateDir, log, logError });
    this.offsite = new OffsiteService({
      systemConfig: this.systemConfig,
      backups: this.backups,
      storage: this.storageRepository,
      fileUse: this.fileUse,
      stateDir,
      log,
      logError,
      onCopyFailed: (filename, error) =>
        this.notifications.notify({ type: 'offsite-failed', title: 'Off-site copy failed', message: `The backup ${filename} was not copied off-site: ${error}`, filename, error }),
    });
    this.retention = new RetentionService({
      systemConfig: this.systemConfig,
      backups: this.backups,
      storage: this.storageRepository,
      fileUse: this.fileUse,
      maintenance: this.maintenance,
      lock: this.lock,
      stateDir,
      log,
      logError,
    });
    this.verification = new VerificationService({
      backups: this.backups,
      reader: new BackupReadRepository(),
      fileUse: this.fileUse,
      databaseName: config.database.database,
      log,
      onCorrupted: (filename, error) =>
        this.notifications.notify({ type: 'verification-failed', title: 'Backup verification failed', message: `The backup ${filename} failed verification: ${error}`, filename, error }),
    });
    this.drills = new DrillService({
      config,
      db,
      restoreRepository: new RestoreRepository(),
      repository: new DrillRepository(),
      backups: this.backups,
      verification: this.verification,
      lock: this.lock,
      fileUse: this.fileUse,
      storage: this.storageRepository,
      stateDir,
      maintenanceActive: () => this.maintenance.isActive(),
      log,
      onFailed: (filename, error) => this.notifications.notify({ type: 'drill-failed', title: 'Restore drill failed', message: `The restore drill of ${filename} failed: ${error}`, filename, error }),
      onChange: () => void this.jobs.refreshDrills(),
    });
    this.backups.runningDrill = () => this.drills.running?.filename ?? null;
    this.jobs = new JobService({
      drills: this.drills,
      retention: this.retention,
      backups: this.backups,
      lock: this.lock,
      systemConfig: this.systemConfig,
      maintenance: this.maintenance,
      storage: this.storageRepository,
      stateDir,
      log,
      logError,
      onBackupFinished: (result) => {
        if (result.result === 'success' && result.filename) {
          const after = this.afterBackup(result.filename).catch((error) => logError(`After the backup ${result.filename}: ${(error as Error).message}`));
          this.afterBackups = this.afterBackups.then(() => after);
        } else if (result.result === 'failed') {
          this.notifications.notify({ type: 'backup-failed', title: 'Backup failed', message: `The database backup started at ${result.startedAt} failed: ${result.error}`, error: result.error });
        }
      },
    });
    this.alertWatch = new AlertWatch({
      config: () => this.systemConfig.get(),
      lastSuccess: async () => {
        const { lastSuccessAt } = await this.jobs.backupHealth();
        return lastSuccessAt ? new Date(lastSuccessAt) : null;
      },
      notify: (event) => this.notifications.notify(event),
      logError,
    });
    this.alertWatch.onMaintenance(this.maintenance.status);
    void this.retention.onMaintenance(this.maintenance.status);
    const unsubscribe = this.maintenance.subscribe((status) => {
      this.alertWatch.onMaintenance(status);
      void this.retention.onMaintenance(status);
    });
    // Alerts still under way are given their chance (they never block: each has a timeout).
    this.onShutdown(() => this.notifications.stop());
    this.onShutdown(() => {
      unsubscribe();
      this.alertWatch.stop();
      this.retention.stop();
    });
    // Registered early, so it runs late among hooks but before the database stops: a running backup is cancelled cleanly.
    this.onShutdown(() => this.jobs.stop());
    // A copy under way is aborted (its multipart upload is abandoned) and recorded as failed.
    this.onShutdown(() => this.offsite.stop());
    // A drill under way is cancelled and its scratch database dropped.
    this.onShutdown(() => this.drills.stop());
    this.restore = new RestoreService(this);
    this.firstRun = new FirstRunService({ auth: this.auth, maintenance: this.maintenance, backups: this.backups, codeFile: join(stateDir, 'setup-code'), log });
    // A running restore is aborted safely (psql killed: its transaction rolls back) and recorded.
    this.onShutdown(() => this.restore.abort());
    this.onShutdown(() => this.maintenance.close());
    const contents = new LibraryContentsRepository(db);
    const libraryFiles = new LibraryFilesRepository();
    this.consistency = new ConsistencyService({ uploadLocation: config.uploadLocation, contents, files: libraryFiles, storage: this.storageRepository, stateDir, log });
    this.preview = new PreviewService({
      backups: this.backups,
      reader: new BackupReadRepository(),
      fileUse: this.fileUse,
      contents,
      files: libraryFiles,
      consistency: this.consistency,
      db,
      databaseName: config.database.database,
      uploadLocation: config.uploadLocation,
      stateDir,
      databaseReadable: () => !this.maintenance.isRunning(),
      log: logError,
    });
    // After each restore that ended well (once per restore), the files are compared with the restored database.
    let reportedRestore: string | null = null;
    const unsubscribeReport = this.maintenance.subscribe((status) => {
      if (status.action !== 'restore_database' || status.task !== 'done' || status.active) return;
      const key = status.startedAt ?? status.finishedAt ?? '';
      if (key === reportedRestore) return;
      reportedRestore = key;
      this.consistency.run('restore', status.backup ?? null).catch((error) => logError(`Files report after the restore failed: ${(error as Error).message}`));
    });
    this.onShutdown(unsubscribeReport);
    this.serverInfo = new ServerInfoService(() => this.isOnboarded(), () => this.maintenance.isActive());
  }

  static async start(config: Config, options: StartOptions = {}): Promise<Lifeboat> {
    const log = options.log ?? ((line: string) => console.log(`[lifeboat] ${line}`));
    const storage = new StorageService(config.uploadLocation, new StorageRepository());
    await storage.ensureLayout();
    const db = await Database.open(config, { fsync: options.fsync });
    const app = new Lifeboat(config, db, log);
    if (db.access.warning) console.warn(`[lifeboat] WARNING: ${db.access.warning}`);
    try {
      const status = await app.maintenance.load();
      // Follow a restore or "maintenance end" run by the command line (or the web server).
      app.maintenance.watch();
      // A database a staged restore replaced and that was not saved to a file yet (a kill, a restart) is saved now.
      // Then the scratch database a restore drill killed mid-way left behind (after the resume: both take the operation lock).
      const resumed = app.restore.resume().then(() => app.drills.removeLeftover());
      if (options.awaitResume) await resumed;
      if (status.active) {
        // A restore may have left the database half-known: migrations wait until maintenance ends.
        log(`Starting in maintenance mode (${status.task}${status.error ? `: ${status.error}` : ''})`);
      } else if (!options.skipMigrations) {
        await app.migrate();
      }
    } catch (error) {
      await db.shutdown();
      throw error;
    }
    return app;
  }

  async migrate(): Promise<string[]> {
    const ran = await this.db.withClient((client) => migrate(client, { log: this.log }));
    if (ran.length) this.log(`Applied ${ran.length} migration(s): ${ran.join(', ')}`);
    return ran;
  }

  /** Once an admin exists the answer never changes, except through a restore, which calls forgetOnboarding(). */
  async isOnboarded(): Promise<boolean> {
    if (!this.onboarded && !this.maintenance.isActive()) this.onboarded = await this.auth.hasAdmin();
    return this.onboarded;
  }

  private lastFullVerification = 0;
  private afterBackups: Promise<void> = Promise.resolve();

  /** Resolves once the work that follows each backup (verification, then the off-site copy) is over. */
  async backgroundIdle(): Promise<void> {
    await this.afterBackups;
    await this.offsite.idle();
  }

  /**
   * A new backup is read back and verified before it is copied off-site (a corrupted one is not
   * copied, and alerts as a failed backup does); with the nightly backup, every other backup is
   * verified again (at most once in 20 hours).
   */
  private async afterBackup(filename: string): Promise<void> {
    const verification = await this.verification.verify(filename);
    if (verification.status === 'verified') await this.offsite.enqueue(filename);
    else this.log(`${filename} is not copied off-site: ${verification.error}`);
    if (Date.now() - this.lastFullVerification > 20 * 3600_000) {
      this.lastFullVerification = Date.now();
      await this.verification.verifyAll();
    }
  }

  /** The backup schedule: started by the web server's init hook only, never by the command line. */
  startScheduler(): Promise<void> {
    this.alertWatch.start();
    this.retention.start();
    void this.systemConfig.get().then((config) => this.drills.schedule(config.backup.drill)).catch(() => undefined);
    this.onShutdown(this.systemConfig.onChange((config) => this.drills.schedule(config.backup.drill)));
    return this.jobs.startScheduler();
  }

  forgetOnboarding(): void {
    this.onboarded = false;
  }

  onShutdown(hook: () => Promise<void> | void): void {
    this.shutdownHooks.push(hook);
  }

  async shutdown(): Promise<void> {
    for (const hook of this.shutdownHooks.reverse()) await hook();
    await this.db.shutdown();
  }
}
