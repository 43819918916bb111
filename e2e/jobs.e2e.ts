import type { APIRequestContext } from '@playwright/test';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN, expect, signUpAdmin, test } from './fixtures';

const NAME_FORMAT = /^immich-db-backup-\d{8}T\d{6}-v\d+\.\d+\.\d+-pg\d+(\.\d+)?\.sql\.gz$/;

async function tokenFor(request: APIRequestContext, user: { email: string; password: string }): Promise<string> {
  const response = await request.post('/api/auth/login', { data: user });
  expect(response.status()).toBe(201);
  return (await response.json()).accessToken;
}

test('Create job → Create Database Backup → Confirm makes a backup shown on Job Queues', async ({ page, instance }) => {
  await signUpAdmin(page);
  await page.goto('/admin');
  await expect(page.getByTestId('backup-health')).toContainText('Last successful backup: never');
  await expect(page.getByTestId('backup-health').getByRole('alert')).toContainText('No successful database backup yet');

  await page.getByRole('link', { name: 'Job Queues' }).first().click();
  await expect(page.getByRole('heading', { name: 'Job Queues' })).toBeVisible();
  const card = page.getByTestId('queue-backup-database');
  await expect(card.getByRole('heading', { name: 'Backup Database' })).toBeVisible();
  await expect(card.getByTestId('backup-database-completed')).toHaveText('0');
  await expect(card).toContainText('No run yet.');

  // The dialog: focus moves into it and Escape closes it.
  await page.getByRole('button', { name: 'Create job' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create job' });
  await expect(dialog).toBeVisible();
  await expect.poll(() => page.evaluate(() => document.activeElement?.closest('dialog') !== null)).toBe(true);
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();

  await page.getByRole('button', { name: 'Create job' }).click();
  await dialog.getByRole('radio', { name: /Create Database Backup/ }).check();
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByRole('status').filter({ hasText: 'Create Database Backup started.' })).toBeVisible();

  // The result arrives over the event stream, without a reload.
  await expect(card.getByTestId('backup-database-last-run')).toContainText('Succeeded');
  await expect(card.getByTestId('backup-database-completed')).toHaveText('1');
  await expect(card.getByTestId('backup-database-active')).toHaveText('0');
  await expect(card.getByTestId('backup-database-last-run')).toContainText(/immich-db-backup-\d{8}T\d{6}/);
  await page.screenshot({ path: test.info().outputPath('job-queues.png'), fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: test.info().outputPath('job-queues-dark.png'), fullPage: true });

  const { backups } = await (await page.request.get('/api/admin/database-backups')).json();
  expect(backups).toHaveLength(1);
  expect(backups[0].filename).toMatch(NAME_FORMAT);
  expect(backups[0]).toMatchObject({ kind: 'routine', version: '1.1.0' });
  expect(backups[0].filesize).toBeGreaterThan(100);

  // The overview now shows the fresh backup and no warning.
  await page.goto('/admin');
  await expect(page.getByTestId('backup-health')).toContainText(/Last successful backup: (just now|\d+ seconds? ago)/);
  await expect(page.getByTestId('backup-health').getByRole('alert')).toHaveCount(0);
  expect(instance.output()).toContain('Database backup started (manual)');
});

test('jobs, system config and backups APIs: auth, validation, download, delete, one backup at a time', async ({ request }) => {
  // Anonymous: 401 everywhere.
  for (const [method, path] of [
    ['GET', '/api/jobs'],
    ['POST', '/api/jobs'],
    ['GET', '/api/jobs/events'],
    ['GET', '/api/system-config'],
    ['PUT', '/api/system-config'],
    ['GET', '/api/admin/database-backups'],
    ['DELETE', '/api/admin/database-backups'],
    ['GET', '/api/admin/database-backups/x.sql.gz'],
  ] as const) {
    const response = await request.fetch(path, { method, data: method === 'GET' ? undefined : {} });
    expect(response.status(), `${method} ${path}`).toBe(401);
  }

  expect((await request.post('/api/auth/admin-sign-up', { data: ADMIN })).status()).toBe(201);
  const admin = { Authorization: `Bearer ${await tokenFor(request, ADMIN)}` };
  const user = { email: 'user@example.com', password: 'user-password-1', name: 'Una User' };
  expect((await request.post('/api/admin/users', { headers: admin, data: user })).status()).toBe(201);
  const nonAdmin = { Authorization: `Bearer ${await tokenFor(request, user)}` };
  for (const [method, path] of [
    ['GET', '/api/jobs'],
    ['POST', '/api/jobs'],
    ['GET', '/api/system-config'],
    ['PUT', '/api/system-config'],
    ['GET', '/api/admin/database-backups'],
    ['DELETE', '/api/admin/database-backups'],
    ['GET', '/api/admin/database-backups/x.sql.gz'],
  ] as const) {
    const response = await request.fetch(path, { method, headers: nonAdmin, data: method === 'GET' ? undefined : { name: 'backup-database' } });
    expect(response.status(), `${method} ${path}`).toBe(403);
  }

  // Two POSTs at once: one backup starts, the other is refused.
  const posts = await Promise.all([1, 2].map(() => request.post('/api/jobs', { headers: admin, data: { name: 'backup-database' } })));
  expect(posts.map((r) => r.status()).sort()).toEqual([201, 409]);
  expect((await posts.find((r) => r.status() === 409)!.json()).message).toMatch(/already running/);
  expect((await request.post('/api/jobs', { headers: admin, data: { name: 'nope' } })).status()).toBe(400);
  // Counted as completed a moment before the job ends (retention, history): wait for both.
  await expect
    .poll(async () => (await (await request.get('/api/jobs', { headers: admin })).json())[0], { timeout: 30_000 })
    .toMatchObject({ completed: 1, active: 0 });
  const [queue] = await (await request.get('/api/jobs', { headers: admin })).json();
  expect(queue).toMatchObject({ name: 'backup-database', title: 'Backup Database', active: 0, failed: 0, lastRun: { result: 'success', error: null } });
  const { backups } = await (await request.get('/api/admin/database-backups', { headers: admin })).json();
  expect(backups.map((b: { filename: string }) => b.filename)).toEqual([queue.lastRun.filename]);
  const filename: string = queue.lastRun.filename;

  // Download: streamed as an attachment, gzip bytes.
  const download = await request.get(`/api/admin/database-backups/${filename}`, { headers: admin });
  expect(download.status()).toBe(200);
  expect(download.headers()['content-disposition']).toBe(`attachment; filename="${filename}"`);
  const body = await download.body();
  expect(body.length).toBe(backups[0].filesize);
  expect([...body.subarray(0, 2)]).toEqual([0x1f, 0x8b]);

  // Bad names are 400 before any path is built; a missing file is 404.
  for (const bad of ['..%2Fx.sql', 'x.txt', '..%2F..%2Fetc%2Fpasswd', '.hidden.sql']) {
    expect((await request.get(`/api/admin/database-backups/${bad}`, { headers: admin })).status(), bad).toBe(400);
  }
  expect((await request.get('/api/admin/database-backups/missing.sql.gz', { headers: admin })).status()).toBe(404);

  // Delete: all or nothing, a missing name is a 404 that names it.
  const missing = await request.delete('/api/admin/database-backups', { headers: admin, data: { backups: [filename, 'missing.sql.gz'] } });
  expect(missing.status()).toBe(404);
  expect((await missing.json()).message).toContain('missing.sql.gz');
  expect((await request.delete('/api/admin/database-backups', { headers: admin, data: { backups: ['../x.sql'] } })).status()).toBe(400);
  const deleted = await request.delete('/api/admin/database-backups', { headers: admin, data: { backups: [filename] } });
  expect(deleted.status()).toBe(200);
  expect((await (await request.get('/api/admin/database-backups', { headers: admin })).json()).backups).toEqual([]);

  // System config: defaults, an invalid cron is 400 and nothing is saved, a valid one is.
  const defaults = await (await request.get('/api/system-config', { headers: admin })).json();
  expect(defaults.backup.database).toEqual({ enabled: true, cronExpression: '0 02 * * *', keepLastAmount: 14 });
  const invalid = await request.put('/api/system-config', { headers: admin, data: { backup: { database: { enabled: true, cronExpression: 'every night', keepLastAmount: 14 } } } });
  expect(invalid.status()).toBe(400);
  expect((await invalid.json()).message).toMatch(/Invalid cron expression "every night"/);
  expect((await request.put('/api/system-config', { headers: admin, data: { backup: { database: { keepLastAmount: 0 } } } })).status()).toBe(400);
  expect(await (await request.get('/api/system-config', { headers: admin })).json()).toEqual(defaults);
  const valid = await request.put('/api/system-config', { headers: admin, data: { backup: { database: { enabled: true, cronExpression: '15 3 * * *', keepLastAmount: 7 } } } });
  expect(valid.status()).toBe(200);
  expect((await (await request.get('/api/system-config', { headers: admin })).json()).backup.database).toEqual({ enabled: true, cronExpression: '15 3 * * *', keepLastAmount: 7 });
});

test('the event stream answers at once with a comment and the current statuses', async ({ request, baseURL }) => {
  expect((await request.post('/api/auth/admin-sign-up', { data: ADMIN })).status()).toBe(201);
  const token = await tokenFor(request, ADMIN);
  const controller = new AbortController();
  const response = await fetch(`${baseURL}/api/jobs/events`, { headers: { Authorization: `Bearer ${token}` }, signal: controller.signal });
  expect(response.headers.get('content-type')).toBe('text/event-stream');
  const reader = response.body!.getReader();
  let text = '';
  while (!text.includes('data: ')) text += new TextDecoder().decode((await reader.read()).value);
  expect(text.startsWith(': connected\n\n')).toBe(true);
  controller.abort();
});

test('a failed scheduled backup shows on Job Queues with its error, in the server log and on the overview', async ({ page, instance }) => {
  await signUpAdmin(page);
  // The backups folder replaced by a file: every backup fails to write.
  const backups = join(instance.uploadLocation, 'backups');
  rmSync(backups, { recursive: true, force: true });
  writeFileSync(backups, 'not a folder');
  await page.goto('/admin/jobs');
  const card = page.getByTestId('queue-backup-database');
  await expect(card).toContainText('No run yet.');

  // Every second, applied without a restart; the result reaches the open page over the event stream.
  const saved = await page.request.put('/api/system-config', { data: { backup: { database: { enabled: true, cronExpression: '* * * * * *', keepLastAmount: 14 } } } });
  expect(saved.status()).toBe(200);
  await expect(card.getByTestId('backup-database-last-run')).toContainText('Failed');
  await expect(card.getByTestId('backup-database-last-run')).toContainText(/not a directory|ENOTDIR/);
  expect(Number(await card.getByTestId('backup-database-failed').textContent())).toBeGreaterThanOrEqual(1);
  await page.request.put('/api/system-config', { data: { backup: { database: { enabled: false } } } });
  expect(instance.output()).toMatch(/Database backup failed: .*(not a directory|ENOTDIR)/);
  expect(instance.output()).toContain('Database backup started (schedule)');
  await page.screenshot({ path: test.info().outputPath('job-queues-failed.png'), fullPage: true });

  await page.goto('/admin');
  await expect(page.getByTestId('backup-health')).toContainText('Last successful backup: never');
});
