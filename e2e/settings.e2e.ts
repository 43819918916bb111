import { Cron } from 'croner';
import { expect, signUpAdmin, test } from './fixtures';

// Far from the server's zone (UTC here): the next runs must be shown in the browser's own time.
test.use({ timezoneId: 'Asia/Tokyo', locale: 'en-US' });

test('Settings > Backup: switch, cron with next runs in local time, keep-last; invalid values are refused and not saved', async ({ page }) => {
  await signUpAdmin(page);
  await page.getByRole('link', { name: 'Settings' }).click();
  await expect(page.getByRole('heading', { name: 'Backup' })).toBeVisible();

  const enabled = page.getByRole('switch', { name: 'Enable database backups' });
  const cron = page.getByLabel('Cron expression');
  const keep = page.getByLabel('Keep last amount');
  await expect(enabled).toBeChecked();
  await expect(cron).toHaveValue('0 02 * * *');
  await expect(keep).toHaveValue('14');
  const nextRuns = page.getByTestId('next-runs').getByRole('listitem');
  await expect(nextRuns).toHaveCount(3);
  // The schedule fires in the server's zone (this machine's, as for the test process); the page
  // shows those moments in the browser's zone, e.g. 2:00 UTC as 11:00 AM in Tokyo.
  const expected = (expression: string) =>
    new Cron(expression, { paused: true }).nextRuns(3).map((run) => run.toLocaleString('en-US', { dateStyle: 'full', timeStyle: 'short', timeZone: 'Asia/Tokyo' }));
  await expect(nextRuns).toHaveText(expected('0 02 * * *'));
  const serverZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (serverZone !== 'Asia/Tokyo') await expect(page.getByTestId('server-time-zone')).toContainText(serverZone);
  await page.screenshot({ path: test.info().outputPath('settings-next-runs.png'), fullPage: true });
  const link = page.getByRole('link', { name: /Learn about cron syntax/ });
  await expect(link).toHaveAttribute('href', 'https://crontab.guru/#0_02_*_*_*');

  // An invalid expression: explained at once, refused by the server, nothing saved.
  await cron.fill('every night');
  await expect(cron).toHaveAttribute('aria-invalid', 'true');
  await expect(page.locator('#backup-cron-preview')).toContainText('Invalid cron expression "every night"');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('alert')).toContainText('Invalid cron expression "every night"');
  await cron.fill('30 4 * * 1');
  await keep.fill('0');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('alert')).toContainText('Keep last amount must be a whole number of at least 1');
  await page.reload();
  await expect(cron).toHaveValue('0 02 * * *');
  await expect(keep).toHaveValue('14');

  // A valid change is saved and shown on reload.
  await cron.fill('30 4 * * 1');
  await expect(nextRuns).toHaveText(expected('30 4 * * 1'));
  await keep.fill('5');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Settings saved' })).toBeVisible();
  await page.reload();
  await expect(cron).toHaveValue('30 4 * * 1');
  await expect(keep).toHaveValue('5');

  // The switch works from the keyboard; with backups off the cron field is not used.
  await enabled.focus();
  await page.keyboard.press('Space');
  await expect(enabled).not.toBeChecked();
  await expect(cron).toBeDisabled();
  await expect(page.getByTestId('next-runs')).toHaveCount(0);
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Settings saved' })).toBeVisible();
  const config = await (await page.request.get('/api/system-config')).json();
  expect(config.backup.database).toEqual({ enabled: false, cronExpression: '30 4 * * 1', keepLastAmount: 5 });
  await page.screenshot({ path: test.info().outputPath('settings.png'), fullPage: true });

  // Administration warns that scheduled backups are off and none exists.
  await page.goto('/admin');
  await expect(page.getByTestId('backup-health')).toContainText('Scheduled backups are turned off');
});
