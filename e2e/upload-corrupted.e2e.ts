import type { Page } from '@playwright/test';
import { ADMIN, expect, signIn, signUpAdmin, test } from './fixtures';
import { addDemoData, chooseUpload, entry, photoCount, versionOneDumpGz } from './restore-helpers';

async function restoreUploaded(page: Page, name: string, dump: Buffer, keyboard = false): Promise<void> {
  await page.goto('/admin/maintenance');
  await chooseUpload(page, { name, mimeType: 'application/gzip', buffer: dump });
  const row = entry(page, `uploaded-${name}`);
  await expect(row).toBeVisible();
  const restore = row.getByRole('button', { name: /^Restore/ });
  if (keyboard) {
    // Keyboard: Escape closes the confirm dialog and gives the focus back to the button that opened it.
    await restore.focus();
    await page.keyboard.press('Enter');
    await expect(page.getByRole('dialog', { name: 'Restore this backup?' })).toBeVisible();
    await page.keyboard.press('Escape');
    await expect(page.getByRole('dialog')).toBeHidden();
    await expect(restore).toBeFocused();
  }
  await restore.click();
  await page.getByRole('dialog').getByRole('button', { name: 'Restore', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'Restore failed' })).toBeVisible({ timeout: 90_000 });
}

async function endMaintenance(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'End maintenance mode' }).click();
  await expect(page).not.toHaveURL(/\/maintenance/);
}

// Journey (d): corrupted dumps never cost the instance its data.
test('a corrupted upload is refused, and restores that fail leave the data unchanged with the error shown', async ({ page, instance }) => {
  await signUpAdmin(page);
  await addDemoData(instance, 1, 4);
  const original = await photoCount(page);
  expect(original).toBeGreaterThan(0);

  // Not gzip at all, though named .sql.gz: refused by the server, nothing stored.
  await page.goto('/admin/maintenance');
  await chooseUpload(page, { name: 'broken.sql.gz', mimeType: 'application/gzip', buffer: Buffer.from('this is not a gzip file\n'.repeat(100)) });
  await expect(page.getByTestId('upload-card').getByRole('alert')).toContainText('not a valid gzip');
  // The backup list's (the first; the checks below have their own).
  await page.getByRole('button', { name: 'Refresh' }).first().click();
  await expect(page.getByText('0 backups in UPLOAD_LOCATION/backups')).toBeVisible();
  await expect(entry(page, 'uploaded-broken.sql.gz')).toHaveCount(0);

  // A valid gzip whose data breaks halfway: psql stops; the new database it loaded into is dropped.
  await restoreUploaded(page, 'damaged.sql.gz', await versionOneDumpGz({ assets: 40, corruptAt: 20 }), true);
  const error = page.getByTestId('maintenance-error');
  await expect(error).toContainText('invalid input syntax for type uuid');
  await expect(error).not.toContainText('Something went wrong, see logs!');
  await page.screenshot({ path: test.info().outputPath('failed.png'), fullPage: true });

  // Staged: the live database was never touched, so there is no restore point to offer.
  await expect(error).toContainText('The database was not changed');
  await expect(page.getByRole('button', { name: 'Restore the restore point' })).toHaveCount(0);

  await endMaintenance(page);
  await signIn(page, ADMIN);
  expect(await photoCount(page)).toBe(original);

  // A dump that loads but leaves no admin: the health check fails after the swap, so it rolls back by swapping back.
  await restoreUploaded(page, 'no-admin.sql.gz', await versionOneDumpGz({ assets: 3, admin: false }));
  await expect(page.getByTestId('maintenance-error')).toContainText('no admin');
  await expect(page.getByTestId('maintenance-log')).toContainText(/roll(ed|ing) back/i);
  await endMaintenance(page);
  await signIn(page, ADMIN);
  expect(await photoCount(page)).toBe(original);
});
