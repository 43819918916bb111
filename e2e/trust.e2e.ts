import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { ADMIN, expect, signIn, signUpAdmin, test } from './fixtures';
import { addDemoData, backUp, entry } from './restore-helpers';

async function shots(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<void> {
  const fullPage = options.fullPage ?? true;
  await page.screenshot({ path: test.info().outputPath(`${name}.png`), fullPage });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: test.info().outputPath(`${name}-dark.png`), fullPage });
  await page.emulateMedia({ colorScheme: 'light' });
}

// Issue 10: every backup's trust state, a restore test, the preview before a restore, the files report after it.
test('verified and corrupted backups, a restore test, the preview, and the files report after a restore', async ({ page, instance }) => {
  await signUpAdmin(page);
  await addDemoData(instance, 1, 6);
  const good = await backUp(page);
  const damaged = await backUp(page);
  // More photos after the backups: once the backup is restored, their files are on disk but unknown to the database.
  await addDemoData(instance, 1, 3);

  // One flipped byte in the middle of the second file.
  const path = join(instance.uploadLocation, 'backups', damaged.filename);
  const bytes = readFileSync(path);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  writeFileSync(path, bytes);

  await page.goto('/admin/maintenance');
  const checks = page.getByTestId('checks-section');
  const goodRow = checks.locator(`[data-testid="backup-check"][data-filename="${good.filename}"]`);
  const damagedRow = checks.locator(`[data-testid="backup-check"][data-filename="${damaged.filename}"]`);

  await goodRow.getByRole('button', { name: `Verify ${good.filename}` }).click();
  await expect(goodRow.getByRole('img', { name: 'Verified' })).toBeVisible();
  await expect(goodRow.getByTestId('verification')).toContainText(/Verified (just now|\d)/);

  await damagedRow.getByRole('button', { name: `Verify ${damaged.filename}` }).click();
  await expect(damagedRow.getByRole('img', { name: 'Corrupted' })).toBeVisible();
  await expect(damagedRow.getByTestId('verification')).toHaveAttribute('data-status', 'corrupted');
  await expect(damagedRow.getByTestId('verification')).toContainText(/Corrupted: .+/);
  await expect(damagedRow.getByRole('button', { name: `Test restore of ${damaged.filename}` })).toBeDisabled();

  // A restore test of the good one: running, then passed with its duration.
  await goodRow.getByRole('button', { name: `Test restore of ${good.filename}` }).click();
  await expect(goodRow.getByTestId('drill')).toHaveAttribute('data-status', 'passed', { timeout: 120_000 });
  await expect(goodRow.getByTestId('drill')).toContainText(/Restore tested .+, took \d/);
  await expect(goodRow.getByRole('img', { name: 'Restore tested' })).toBeVisible();
  await page.evaluate(() => window.scrollTo(0, 0));
  await shots(page, 'maintenance-checks');

  // The restore dialog shows what is inside beside what the instance has now.
  await entry(page, good.filename).getByRole('button', { name: /^Restore/ }).click();
  const dialog = page.getByRole('dialog', { name: 'Restore this backup?' });
  const preview = dialog.getByTestId('restore-preview');
  await expect(preview).toBeVisible();
  await expect(preview.getByTestId('preview-files')).toContainText(/The backup refers to \d+ files: \d+ are on disk, 0 missing/);
  await expect(preview).toHaveAttribute('aria-busy', 'false');
  await expect(preview.getByTestId('preview-users')).toContainText('Users');
  await expect(preview).toContainText(ADMIN.email);
  const assets = preview.getByTestId('preview-assets').getByRole('cell');
  const [inBackup, now] = [Number((await assets.nth(0).textContent())!.replace(/\D/g, '')), Number((await assets.nth(1).textContent())!.replace(/\D/g, ''))];
  expect(now, 'assets now: the backup plus the ones added after it').toBeGreaterThan(inBackup);
  await shots(page, 'restore-preview', { fullPage: false });

  await dialog.getByRole('button', { name: 'Restore', exact: true }).click();
  await expect(page).toHaveURL(/\/maintenance$/);
  await expect(page.getByRole('heading', { name: 'Restore complete' })).toBeVisible({ timeout: 120_000 });
  await page.getByRole('link', { name: 'Sign in' }).click();
  await signIn(page, ADMIN);

  // The report ran after the restore: the photos added after the backup are untracked now.
  await page.goto('/admin/maintenance');
  const report = page.getByTestId('files-report');
  await expect(report).toContainText(`after restoring ${good.filename}`, { timeout: 60_000 });
  await expect(report.getByTestId('files-missing-count')).toHaveText('0');
  expect(Number(await report.getByTestId('files-untracked-count').textContent())).toBeGreaterThan(0);
  await report.getByText('Show them').first().click();
  await expect(report.getByTestId('files-untracked').getByRole('listitem').first()).toBeVisible();
  await expect(report.getByRole('link', { name: 'CSV of all' })).toHaveAttribute('href', '/api/admin/maintenance/consistency/csv');
  await report.getByRole('button', { name: 'Check again' }).click();
  await expect(report).not.toContainText('after restoring');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shots(page, 'files-report');
});
