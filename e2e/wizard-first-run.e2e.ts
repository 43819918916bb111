import { join } from 'node:path';
import { ADMIN, expect, setupCodeOf, signIn, signUpAdmin, startInstance, test, type Instance } from './fixtures';
import { addDemoData, backUp, copyStorage, entriesIn, entry, photoCount, STORAGE_FOLDERS } from './restore-helpers';

// Journey (b): a new machine with only the old UPLOAD_LOCATION → Welcome → Restore from backup.
test('the first-run wizard restores an older instance from the files in UPLOAD_LOCATION', async ({ page, instance: old, browser, playwright }) => {
  // The old instance: an admin, data, a backup; then its folders move to a fresh instance.
  await signUpAdmin(page);
  await addDemoData(old, 2, 9);
  const original = await photoCount(page);
  expect(original).toBeGreaterThan(0);
  const backup = await backUp(page);

  let fresh: Instance | null = null;
  try {
    fresh = await startInstance((uploadLocation) => copyStorage(old.uploadLocation, uploadLocation));
    await old.stop();
    const context = await browser.newContext({ baseURL: fresh.baseURL });
    const wizard = await context.newPage();

    // A stranger who reaches the server first gets no maintenance token, so no backup.
    const stranger = await playwright.request.newContext({ baseURL: fresh.baseURL });
    const refused = await stranger.post('/api/admin/database-backups/start-restore');
    expect(refused.status()).toBe(401);
    expect((await refused.json()).message).toContain('Enter the setup code printed in the server log at start');
    expect((await stranger.get('/api/admin/database-backups')).status()).toBe(401);
    expect((await stranger.get(`/api/admin/database-backups/${backup.filename}`)).status()).toBe(401);

    // The owner: Welcome → Restore from backup asks for the setup code, and says where it is.
    const code = setupCodeOf(fresh);
    await wizard.goto('/');
    await expect(wizard).toHaveURL(/\/welcome$/);
    await wizard.getByRole('button', { name: 'Restore from backup' }).click();
    await expect(wizard.getByLabel('Setup code')).toBeFocused();
    await expect(wizard.getByTestId('setup-code-hint')).toContainText(join(fresh.uploadLocation, '.lifeboat', 'setup-code'));
    await expect(wizard.getByTestId('setup-code-hint')).toContainText('printed in the server log at start');
    await wizard.getByLabel('Setup code').fill('AAAA-BBBB-CCCC-DDDD-EEEE');
    await wizard.getByRole('button', { name: 'Continue to the restore' }).click();
    await expect(wizard.getByRole('alert')).toContainText('That setup code is not right');
    await wizard.screenshot({ path: test.info().outputPath('wizard-setup-code.png'), fullPage: true });
    await wizard.getByLabel('Setup code').fill(code);
    await wizard.getByLabel('Setup code').press('Enter');
    await expect(wizard).toHaveURL(/\/maintenance$/);

    // The owner's other browser joins the wizard with the code; the stranger still cannot.
    expect((await stranger.post('/api/admin/database-backups/start-restore', { data: { setupCode: 'AAAA-BBBB-CCCC-DDDD-EEEE' } })).status()).toBe(403);
    expect((await stranger.get('/api/admin/database-backups')).status()).toBe(401);
    const other = await browser.newContext({ baseURL: fresh.baseURL });
    const second = await other.newPage();
    await second.goto('/');
    await expect(second).toHaveURL(/\/maintenance$/);
    await expect(second.getByRole('heading', { name: 'This server is in maintenance mode' })).toBeVisible();
    await second.getByLabel('Setup code').fill(code);
    await second.getByRole('button', { name: 'Continue' }).click();
    await expect(second.getByRole('heading', { name: 'Step 1 of 3: Check storage' })).toBeVisible();
    await other.close();

    // Step 1: the integrity check counts what the old instance left in each folder.
    await expect(wizard.getByRole('heading', { name: 'Step 1 of 3: Check storage' })).toBeVisible();
    const table = wizard.getByTestId('integrity-table');
    for (const folder of STORAGE_FOLDERS) {
      const expected = entriesIn(join(fresh.uploadLocation, folder));
      await expect(table.locator(`tr[data-folder="${folder}"] [data-testid="file-count"]`)).toHaveText(String(expected));
    }
    expect(entriesIn(join(fresh.uploadLocation, 'upload'))).toBeGreaterThan(0);
    await expect(table.locator('tr[data-folder="upload"]')).toContainText('Ready');
    await wizard.screenshot({ path: test.info().outputPath('wizard-integrity.png'), fullPage: true });

    // Keyboard only from here: Next, the backup's Restore button, then the final Restore.
    await wizard.getByRole('button', { name: 'Next' }).focus();
    await wizard.keyboard.press('Enter');
    await expect(wizard.getByRole('heading', { name: 'Step 2 of 3: Choose a backup' })).toBeFocused();
    const row = entry(wizard, backup.filename);
    await expect(row).toBeVisible();
    await wizard.screenshot({ path: test.info().outputPath('wizard-backups.png'), fullPage: true });
    await row.getByRole('button', { name: /^Restore/ }).focus();
    await wizard.keyboard.press('Enter');

    await expect(wizard.getByRole('heading', { name: 'Step 3 of 3: Restore' })).toBeFocused();
    await expect(wizard.getByTestId('chosen-backup')).toHaveText(backup.filename);
    await wizard.getByRole('button', { name: 'Restore', exact: true }).click();

    await expect(wizard.getByRole('heading', { name: 'Restore complete' })).toBeVisible({ timeout: 90_000 });
    // The restored instance has its admin: the code opens nothing any more.
    for (const path of ['/api/admin/database-backups/start-restore', '/api/auth/admin-sign-up']) {
      const late = await stranger.post(path, { data: { ...ADMIN, setupCode: code } });
      expect(late.status(), path).toBe(400);
      expect(await late.json()).toEqual({ message: 'Admin setup is not available' });
    }
    await stranger.dispose();
    await wizard.getByRole('link', { name: 'Sign in' }).click();
    await signIn(wizard, ADMIN);
    expect(await photoCount(wizard)).toBe(original);
    await context.close();
  } finally {
    await fresh?.stop();
  }
});
