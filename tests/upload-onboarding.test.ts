import { afterEach, describe, expect, it } from 'vitest';
import { OnboardingRestoreService } from '../src/lib/server/services/onboarding-restore.service';
import { startInstance, type TestInstance } from './helpers/pg';

// "Restore from backup" on the Welcome page (POST /api/admin/database-backups/start-restore).
describe('first-run restore', () => {
  let instance: TestInstance | null = null;
  afterEach(async () => {
    await instance?.close();
    instance = null;
  });

  it('enters maintenance mode with a token for this browser while there is no admin', async () => {
    instance = await startInstance();
    const { app } = instance;
    const token = await new OnboardingRestoreService(app.auth, app.maintenance).start();
    expect(app.maintenance.isActive()).toBe(true);
    expect(app.maintenance.validateToken(token)).toBe(true);
    expect(app.maintenance.validateToken('someone-else')).toBe(false);
  });

  it('is refused once an admin exists: "Admin setup is not available"', async () => {
    instance = await startInstance();
    const { app } = instance;
    await app.auth.adminSignUp({ email: 'admin@example.com', password: 'password123', name: 'Admin' });
    await expect(new OnboardingRestoreService(app.auth, app.maintenance).start()).rejects.toMatchObject({ status: 400, message: 'Admin setup is not available' });
    expect(app.maintenance.isActive()).toBe(false);
  });
});
