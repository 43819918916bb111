import type { AuthService } from './auth.service';
import { badRequest, conflict } from './errors';
import type { MaintenanceService } from './maintenance.service';

/**
 * "Restore from backup" on the Welcome page: a fresh instance (no admin yet) enters
 * maintenance mode and the browser that asked gets the maintenance token, which lets it
 * run the first-run wizard (integrity check, backup list, restore).
 */
export class OnboardingRestoreService {
  constructor(
    private readonly auth: AuthService,
    private readonly maintenance: MaintenanceService,
  ) {}

  async start(): Promise<string> {
    // While a restore replaces the database, asking it about admins would wait on its locks.
    if (this.maintenance.isRunning()) throw conflict('A restore is already running');
    if (await this.auth.hasAdmin()) throw badRequest('Admin setup is not available');
    return this.maintenance.start('start', 'the first-run wizard');
  }
}
