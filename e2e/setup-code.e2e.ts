import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ADMIN, expect, setupCodeOf, startInstance, test } from './fixtures';

const OLD_BACKUP = 'immich-db-backup-20250101T000000-v1.1.0-pg15.sql.gz';
const WRONG = 'AAAA-BBBB-CCCC-DDDD-EEEE';

// A reinstall over an old library: UPLOAD_LOCATION/backups holds backups, the new database has no admin.
test('on an old library, strangers are refused everywhere without the setup code; the owner signs up with it', async ({ browser, playwright }) => {
  const instance = await startInstance((uploadLocation) => {
    mkdirSync(join(uploadLocation, 'backups'));
    writeFileSync(join(uploadLocation, 'backups', OLD_BACKUP), gzipSync('-- PostgreSQL database dump\n-- with the old password hashes\n'));
  });
  const stranger = await playwright.request.newContext({ baseURL: instance.baseURL });
  const owner = await browser.newContext({ baseURL: instance.baseURL });
  const page = await owner.newPage();
  try {
    const codeFile = join(instance.uploadLocation, '.lifeboat', 'setup-code');
    const hint = `Enter the setup code printed in the server log at start, or found in ${codeFile}.`;

    // The first credentials: without the code 401, with a wrong one 403, each saying where the code is.
    for (const path of ['/api/auth/admin-sign-up', '/api/admin/database-backups/start-restore']) {
      const without = await stranger.post(path, { data: ADMIN });
      expect(without.status(), path).toBe(401);
      expect((await without.json()).message).toBe(`This server's library already holds backups. ${hint}`);
      const wrong = await stranger.post(path, { data: { ...ADMIN, setupCode: WRONG } });
      expect(wrong.status(), path).toBe(403);
      expect((await wrong.json()).message).toBe(`That setup code is not right. ${hint}`);
    }
    // So no token: the backup list, download, upload, restore and the wizard's integrity check stay shut.
    expect((await stranger.get('/api/admin/database-backups')).status()).toBe(401);
    expect((await stranger.get(`/api/admin/database-backups/${OLD_BACKUP}`)).status()).toBe(401);
    const upload = await stranger.post('/api/admin/database-backups/upload', {
      multipart: { file: { name: 'mine.sql.gz', mimeType: 'application/gzip', buffer: gzipSync('SELECT 1;\n') } },
    });
    expect(upload.status()).toBe(401);
    expect((await stranger.post('/api/admin/maintenance', { data: { action: 'restore_database', restoreBackupFilename: OLD_BACKUP } })).status()).toBe(401);
    expect((await stranger.get('/api/admin/maintenance/detect-install')).status()).toBe(401);
    expect(await (await stranger.get('/api/server/config')).json()).toMatchObject({ isOnboarded: false, maintenanceMode: false });

    // The owner: Getting started asks for the code too, and says where it is.
    const code = setupCodeOf(instance);
    await page.goto('/');
    await expect(page).toHaveURL(/\/welcome$/);
    await page.getByRole('link', { name: 'Getting started' }).click();
    await expect(page.getByTestId('setup-code-hint')).toContainText(codeFile);
    await page.getByLabel('Email').fill(ADMIN.email);
    await page.getByLabel('Name').fill(ADMIN.name);
    await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
    await page.getByLabel('Confirm password').fill(ADMIN.password);
    await page.getByLabel('Setup code').fill(WRONG);
    await page.getByRole('button', { name: 'Sign up' }).click();
    await expect(page.getByRole('alert')).toHaveText(`That setup code is not right. ${hint}`);
    await page.screenshot({ path: test.info().outputPath('register-setup-code.png'), fullPage: true });
    await page.getByLabel('Setup code').fill(code.toLowerCase());
    await page.getByRole('button', { name: 'Sign up' }).click();
    await expect(page.getByRole('heading', { name: 'Administration', level: 1 })).toBeVisible();

    // An admin exists: the code opens nothing, and its file is gone.
    for (const path of ['/api/auth/admin-sign-up', '/api/admin/database-backups/start-restore']) {
      const late = await stranger.post(path, { data: { email: 'late@example.com', password: 'late-password', name: 'Late', setupCode: code } });
      expect(late.status(), path).toBe(400);
      expect(await late.json()).toEqual({ message: 'Admin setup is not available' });
    }
    expect(existsSync(codeFile)).toBe(false);
    expect((await stranger.get('/api/admin/database-backups')).status()).toBe(401);
    // The admin's session lists the old backup.
    const list = await page.request.get('/api/admin/database-backups');
    expect((await list.json()).backups.map((b: { filename: string }) => b.filename)).toContain(OLD_BACKUP);
  } finally {
    await owner.close();
    await stranger.dispose();
    await instance.stop();
  }
});

test('a brand-new, empty install asks for no setup code', async ({ page, instance, request }) => {
  await page.goto('/welcome');
  await page.getByRole('link', { name: 'Getting started' }).click();
  await expect(page.getByRole('heading', { name: 'Create the admin account' })).toBeVisible();
  await expect(page.getByLabel('Setup code')).toHaveCount(0);
  expect(existsSync(join(instance.uploadLocation, '.lifeboat', 'setup-code'))).toBe(false);
  expect(instance.output()).not.toContain('Setup code');
  // As on the reference server: the first to come may start the first-run wizard.
  expect((await request.post('/api/admin/database-backups/start-restore')).status()).toBe(201);
});
