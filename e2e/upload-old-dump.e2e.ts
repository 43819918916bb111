import { ADMIN, expect, signIn, signUpAdmin, test } from './fixtures';
import { chooseUpload, entry, OLD_ADMIN, photoCount, versionOneDumpGz } from './restore-helpers';

// Journey (c): a dump made by an older version, uploaded from the computer, restored and migrated.
test('an uploaded dump of an older version is labelled as such and restores', async ({ page }) => {
  await signUpAdmin(page);
  expect(await photoCount(page)).toBe(0);
  await page.goto('/admin/maintenance');

  const name = 'immich-db-backup-20240105T101500-v1.0.0-pg15.10.sql.gz';
  await chooseUpload(page, { name, mimeType: 'application/gzip', buffer: await versionOneDumpGz({ assets: 3 }) });
  const row = entry(page, `uploaded-${name}`);
  await expect(row).toBeVisible();
  await expect(row.getByText('Uploaded', { exact: true })).toBeVisible();
  await expect(row).toContainText('Version v1.0.0');
  // Yellow alert, its meaning in words for screen readers and on hover.
  const icon = row.getByRole('img', { name: /older version \(v1\.0\.0\)/ });
  await expect(icon).toBeVisible();
  await expect(icon).toHaveCSS('color', 'rgb(254, 176, 1)');
  await expect(page.getByTestId('upload-card')).toContainText(`Uploaded as uploaded-${name}`);
  await page.screenshot({ path: test.info().outputPath('backup-list.png'), fullPage: true });

  // The same file again is refused before any byte is sent.
  await chooseUpload(page, { name, mimeType: 'application/gzip', buffer: await versionOneDumpGz({ assets: 3 }) });
  await expect(page.getByTestId('upload-card').getByRole('alert')).toContainText('already exists');

  await row.getByRole('button', { name: /^Restore/ }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Restore', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'Restore complete' })).toBeVisible({ timeout: 90_000 });
  await expect(page.getByTestId('restore-done')).toBeVisible();

  // The admin of the old dump signs in; the one who did the restore no longer exists.
  await page.getByRole('link', { name: 'Sign in' }).click();
  await signIn(page, OLD_ADMIN);
  expect(await photoCount(page)).toBe(3);
  await page.goto('/admin/users');
  await expect(page.getByRole('cell', { name: OLD_ADMIN.email, exact: true })).toBeVisible();
  await expect(page.getByRole('cell', { name: ADMIN.email, exact: true })).toHaveCount(0);
});
