import { ADMIN, expect, signIn, signUpAdmin, test } from './fixtures';
import { addDemoData, backUp, createUser, entry, holdDatabaseCreation, photoCount } from './restore-helpers';

// Journey (a): restore from Administration > Maintenance, watch the progress, get the old data back.
test('restore from the Maintenance page brings back the data of the backup', async ({ page, instance, browser }) => {
  await signUpAdmin(page);
  await addDemoData(instance, 1, 6);
  const original = await photoCount(page);
  expect(original).toBeGreaterThan(0);
  const backup = await backUp(page);

  // Change the data after the backup: a new user, more photos.
  await createUser(page, { email: 'later@example.com', name: 'Later User', password: 'later-password' });
  await addDemoData(instance, 1, 4);
  expect(await photoCount(page)).toBeGreaterThan(original);

  await page.goto('/admin/maintenance');
  await expect(page.getByRole('heading', { name: 'Maintenance', exact: true })).toBeVisible();
  const row = entry(page, backup.filename);
  await expect(row).toBeVisible();
  await expect(row.getByRole('img', { name: /Made by this version/ })).toBeVisible();
  await page.screenshot({ path: test.info().outputPath('maintenance-page.png'), fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: test.info().outputPath('maintenance-page-dark.png'), fullPage: true });
  await page.emulateMedia({ colorScheme: 'light' });

  // Hold the restore in its first step (creating the new database waits for this lock),
  // so the progress screen and a reload in the middle of the restore can be checked.
  const release = await holdDatabaseCreation(instance);
  try {
    await row.getByRole('button', { name: /^Restore/ }).click();
    const dialog = page.getByRole('dialog', { name: 'Restore this backup?' });
    await expect(dialog).toContainText('The current database will be wiped and replaced with this backup');
    await dialog.getByRole('button', { name: 'Restore', exact: true }).click();

    await expect(page).toHaveURL(/\/maintenance$/);
    const progress = page.getByTestId('restore-progress');
    await expect(progress).toBeVisible();
    await expect(page.getByTestId('current-task')).toHaveText('Restoring the backup');
    await expect(progress).toContainText(backup.filename);
    await expect(page.getByTestId('maintenance-log')).toContainText('Restoring');
    await page.screenshot({ path: test.info().outputPath('progress.png'), fullPage: true });

    // A reload in the middle shows the same state, log included.
    const logBefore = await page.getByTestId('maintenance-log').textContent();
    await page.reload();
    await expect(page.getByTestId('current-task')).toHaveText('Restoring the backup');
    await expect(page.getByTestId('restore-progress')).toContainText(backup.filename);
    expect(await page.getByTestId('maintenance-log').textContent()).toContain(logBefore!.split('\n')[0]);

    // Someone without the maintenance token sees the progress, never the log.
    const anonymous = await browser.newContext({ baseURL: instance.baseURL });
    const visitor = await anonymous.newPage();
    await visitor.goto('/photos');
    await expect(visitor).toHaveURL(/\/maintenance$/);
    await expect(visitor.getByTestId('current-task')).toHaveText('Restoring the backup');
    await expect(visitor.getByTestId('maintenance-log')).toHaveCount(0);
    await anonymous.close();
  } finally {
    await release();
  }

  await expect(page.getByRole('heading', { name: 'Restore complete' })).toBeVisible({ timeout: 90_000 });
  await page.screenshot({ path: test.info().outputPath('done.png'), fullPage: true });
  await page.getByRole('link', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/auth\/login/);
  await signIn(page, ADMIN);
  expect(await photoCount(page)).toBe(original);
  await page.goto('/admin/users');
  await expect(page.getByRole('cell', { name: ADMIN.email })).toBeVisible();
  await expect(page.getByRole('cell', { name: 'later@example.com' })).toHaveCount(0);
});
