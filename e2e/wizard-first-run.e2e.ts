import { join } from 'node:path';
import { ADMIN, expect, signIn, signUpAdmin, startInstance, test, type Instance } from './fixtures';
import { addDemoData, backUp, copyStorage, entriesIn, entry, photoCount, STORAGE_FOLDERS } from './restore-helpers';

// Journey (b): a new machine with only the old UPLOAD_LOCATION → Welcome → Restore from backup.
test('the first-run wizard restores an older instance from the files in UPLOAD_LOCATION', async ({ page, instance: old, browser }) => {
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

    await wizard.goto('/');
    await expect(wizard).toHaveURL(/\/welcome$/);
    await wizard.getByRole('button', { name: 'Restore from backup' }).click();
    await expect(wizard).toHaveURL(/\/maintenance$/);

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
    await wizard.getByRole('link', { name: 'Sign in' }).click();
    await signIn(wizard, ADMIN);
    expect(await photoCount(wizard)).toBe(original);
    await context.close();
  } finally {
    await fresh?.stop();
  }
});
