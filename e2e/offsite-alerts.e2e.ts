import type { Page } from '@playwright/test';
import { startS3, S3_ACCESS_KEY, S3_SECRET } from '../tests/helpers/s3';
import { startSmtp, startWebhookReceiver } from '../tests/helpers/receivers';
import { expect, signUpAdmin, test } from './fixtures';

async function shots(page: Page, name: string) {
  await page.emulateMedia({ colorScheme: 'light' });
  await page.screenshot({ path: test.info().outputPath(`${name}-light.png`), fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: test.info().outputPath(`${name}-dark.png`), fullPage: true });
  await page.emulateMedia({ colorScheme: 'light' });
}

test('Settings: off-site copies and both alert channels set up and tested; a backup shows as copied off-site', async ({ page, instance }) => {
  const [s3, smtp, hook] = await Promise.all([startS3(), startSmtp(), startWebhookReceiver()]);
  try {
    await signUpAdmin(page);
    await page.getByRole('link', { name: 'Settings' }).first().click();
    await page.getByRole('navigation', { name: 'Settings sections' }).getByRole('link', { name: 'Off-site copies' }).click();
    await expect(page.getByRole('heading', { name: 'Off-site copies' })).toBeVisible();

    // Validation beside the field, before anything is sent.
    await page.getByRole('switch', { name: 'Copy backups off-site' }).check();
    await page.getByLabel('Bucket', { exact: true }).fill('');
    await page.getByRole('button', { name: 'Save off-site settings' }).click();
    await expect(page.locator('#offsite-bucket-error')).toContainText('Enter the bucket name');
    await expect(page.locator('#offsite-access-key-error')).toContainText('Enter the access key ID');

    await page.getByLabel('Endpoint URL').fill(s3.endpoint);
    await page.getByLabel('Region', { exact: true }).fill('us-east-1');
    await page.getByLabel('Bucket', { exact: true }).fill(s3.bucket);
    await page.getByLabel('Folder in the bucket').fill('nightly');
    await page.getByLabel('Copies to keep off-site').fill('5');
    await page.getByLabel('Access key ID').fill(S3_ACCESS_KEY);
    // A wrong secret first: Test connection says exactly what is wrong.
    await page.getByLabel('Secret access key').fill('not-the-secret');
    await page.getByRole('button', { name: 'Test connection' }).click();
    await expect(page.getByTestId('offsite-test-results')).toContainText('The secret access key is wrong');
    await page.getByLabel('Secret access key').fill(S3_SECRET);
    await page.getByRole('button', { name: 'Test connection' }).click();
    const results = page.getByTestId('offsite-test-results');
    await expect(results).toContainText('Deleted the test object.');
    await expect(results.getByRole('listitem')).toHaveCount(5);
    await page.getByRole('button', { name: 'Save off-site settings' }).click();
    await expect(page.getByRole('status')).toContainText('Saved. The next backups will be copied off-site.');
    // The secret is write-only: after saving, the field is empty and says one is stored.
    await expect(page.getByLabel('Secret access key')).toHaveValue('');
    await expect(page.locator('#offsite-secret-help')).toContainText('A secret is stored');
    await shots(page, 'settings-offsite');

    // The API: secrets come back empty, an empty secret keeps the stored one, a bad value is a 400 naming the field.
    const config = await (await page.request.get('/api/system-config')).json();
    expect(config.backup.offsite).toMatchObject({ enabled: true, bucket: s3.bucket, prefix: 'nightly', secretAccessKey: '', secretAccessKeySet: true });
    const refused = await page.request.put('/api/system-config', { data: { backup: { offsite: { endpoint: 'ftp://example.com' } } } });
    expect(refused.status()).toBe(400);
    expect((await refused.json()).message).toMatch(/^backup\.offsite\.endpoint: The endpoint URL must start with http:\/\/ or https:\/\//);
    const tested = await (await page.request.post('/api/admin/backup-offsite/test', { data: {} })).json();
    expect(tested.ok).toBe(true);

    await page.getByRole('navigation', { name: 'Settings sections' }).getByRole('link', { name: 'Alerts' }).click();
    await expect(page.getByRole('heading', { name: 'Email' })).toBeVisible();
    await page.getByRole('switch', { name: 'Send alerts by email' }).check();
    await page.getByLabel('SMTP server').fill('127.0.0.1');
    await page.getByLabel('Port', { exact: true }).fill(String(smtp.port));
    await page.getByLabel('From', { exact: true }).fill('Lifeboat <lifeboat@example.com>');
    await page.getByLabel('To', { exact: true }).fill('not an address');
    await page.getByRole('switch', { name: 'Send alerts to a webhook' }).check();
    await page.getByLabel('Webhook URL').fill(hook.url);
    await page.getByRole('button', { name: 'Save alert settings' }).click();
    await expect(page.locator('#email-to-error')).toContainText('Not an email address: not an address');
    await page.getByLabel('To', { exact: true }).fill('admin@example.com');
    await page.getByRole('button', { name: 'Save alert settings' }).click();
    await expect(page.getByRole('status')).toContainText('Alert settings saved.');

    await page.getByRole('button', { name: 'Send test email' }).click();
    await expect(page.getByTestId('email-test-results')).toContainText('Test email sent to admin@example.com.');
    await page.getByRole('button', { name: 'Send test webhook' }).click();
    await expect(page.getByTestId('webhook-test-results')).toContainText('Test webhook sent to http://127.0.0.1:');
    expect(smtp.mails.map((mail) => mail.subject)).toEqual(['[Lifeboat] Test alert']);
    expect(hook.hooks.map((received) => received.json.event)).toEqual(['test']);
    const apiTest = await (await page.request.post('/api/admin/notifications/test', { data: { channel: 'webhook' } })).json();
    expect(apiTest).toEqual({ ok: true, results: [{ channel: 'webhook', ok: true, message: expect.stringContaining('Test webhook sent') }] });
    // Without a session: refused, nothing sent.
    for (const path of ['/api/admin/notifications/test', '/api/admin/backup-offsite/test', '/api/admin/backup-offsite/fetch']) {
      const anonymous = await fetch(`${instance.baseURL}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', origin: instance.baseURL }, body: '{}' });
      expect(anonymous.status, path).toBe(401);
    }
    expect(hook.hooks).toHaveLength(2);
    await shots(page, 'settings-alerts');

    // A backup (started through the API the Job Queues page uses), then the list shows it copied off-site.
    const started = await page.request.post('/api/jobs', { data: { name: 'backup-database' } });
    expect(started.ok()).toBe(true);
    await page.getByRole('link', { name: 'Maintenance' }).first().click();
    const entry = page.getByTestId('backup-entry').first();
    await expect(async () => {
      // The backup list's (the first; the checks below have their own).
      await page.getByRole('button', { name: /Refresh/ }).first().click();
      await expect(entry.getByTestId('offsite-status')).toHaveText('Copied off-site', { timeout: 2_000 });
    }).toPass({ timeout: 60_000 });
    const filename = await entry.getAttribute('data-filename');
    // The manifest goes with its backup.
    expect(await s3.keys('nightly/')).toEqual([`nightly/${filename}`, `nightly/${filename}.manifest.json`, `nightly/${filename}.sha256`]);
    await shots(page, 'backups-copied-offsite');

    // Retention by generations, with the preview of what would be kept.
    await page.getByRole('link', { name: 'Settings' }).first().click();
    await page.getByRole('radio', { name: 'Daily, weekly and monthly generations' }).check();
    await page.getByLabel('Days', { exact: true }).fill('0');
    await page.getByLabel('Weeks', { exact: true }).fill('0');
    await page.getByLabel('Months', { exact: true }).fill('0');
    await expect(page.locator('#generations-error')).toContainText('Keep at least one daily, weekly or monthly backup');
    await page.getByLabel('Days', { exact: true }).fill('7');
    await page.getByLabel('Weeks', { exact: true }).fill('4');
    await page.getByLabel('Months', { exact: true }).fill('6');
    await expect(page.getByTestId('retention-preview')).toHaveText('With these rules, 1 of the 1 routine backup would be kept.');
    await page.getByLabel('Restore points to keep').fill('2');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await expect(page.getByRole('status').filter({ hasText: 'Settings saved' })).toBeVisible();
    const saved = await (await page.request.get('/api/system-config')).json();
    expect(saved.backup.database.generations).toEqual({ daily: 7, weekly: 4, monthly: 6 });
    expect(saved.backup.restorePoints).toEqual({ keepLastAmount: 2 });
    await shots(page, 'settings-backup-generations');
  } finally {
    await Promise.all([s3.close(), smtp.close(), hook.close()]);
  }
});
