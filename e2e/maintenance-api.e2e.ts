import { request as playwrightRequest, type APIRequestContext } from '@playwright/test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { expect, test } from './fixtures';
import type { BackupFile, MaintenanceStatus } from '../src/lib/shared/types';
import { holdDatabaseCreation } from './restore-helpers';

const ADMIN = { email: 'api-admin@example.com', password: 'correct-horse-battery', name: 'Api Admin' };

async function signedInAdmin(request: APIRequestContext) {
  expect((await request.post('/api/auth/admin-sign-up', { data: ADMIN })).status()).toBe(201);
  expect((await request.post('/api/auth/login', { data: { email: ADMIN.email, password: ADMIN.password } })).status()).toBe(201);
}

/** Starts a backup and waits until its job is over (the file appears a moment before the job lets go of the lock). */
async function backUp(request: APIRequestContext): Promise<string> {
  expect((await request.post('/api/jobs', { data: { name: 'backup-database' } })).status()).toBe(201);
  let name: string | undefined;
  await expect
    .poll(async () => {
      const [queue] = await (await request.get('/api/jobs')).json();
      name = queue.active === 0 && queue.lastRun?.result === 'success' ? queue.lastRun.filename : undefined;
      return name;
    })
    .toBeTruthy();
  return name!;
}

async function statusOf(request: APIRequestContext): Promise<MaintenanceStatus> {
  const response = await request.get('/api/admin/maintenance/status');
  expect(response.status()).toBe(200);
  return response.json();
}

/** Reads Server-Sent Events until `until` accepts one; returns the events seen. */
async function readEvents(url: string, cookie: string, until: (status: MaintenanceStatus) => boolean): Promise<{ first: string; events: MaintenanceStatus[] }> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { cookie }, signal: controller.signal });
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const events: MaintenanceStatus[] = [];
  const deadline = Date.now() + 60_000;
  try {
    while (Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, end);
        text = text.slice(end + 2);
        if (block.startsWith('data: ')) events.push(JSON.parse(block.slice(6)));
        else events.push({ comment: block } as unknown as MaintenanceStatus);
        if (block.startsWith('data: ') && until(events[events.length - 1])) return { first: JSON.stringify(events[0]), events };
      }
    }
    throw new Error(`no matching event: ${JSON.stringify(events)}`);
  } finally {
    controller.abort();
  }
}

function cookieHeader(cookies: Array<{ name: string; value: string }>): string {
  return cookies.map((c) => `${c.name}=${c.value}`).join('; ');
}

test('maintenance API: gating, tokens, anonymous status, restore, late SSE subscriber, end', async ({ instance, request }) => {
  const anonymous = await playwrightRequest.newContext({ baseURL: instance.baseURL });
  expect((await anonymous.post('/api/admin/maintenance', { data: { action: 'start' } })).status()).toBe(401);

  await signedInAdmin(request);
  const backup = await backUp(request);
  expect((await request.post('/api/admin/users', { data: { email: 'later@example.com', password: 'password123', name: 'Later' } })).status()).toBe(201);

  // Start: 201, the status, and an HttpOnly cookie for this client.
  const started = await request.post('/api/admin/maintenance', { data: { action: 'start' } });
  expect(started.status()).toBe(201);
  expect(await started.json()).toMatchObject({ active: true, action: 'start' });
  expect(started.headers()['set-cookie']).toMatch(/immich_maintenance_token=[^;]+;.*HttpOnly/i);
  expect(started.headers()['set-cookie']).toMatch(/SameSite=Lax/i);
  expect(started.headers()['set-cookie']).toMatch(/Path=\//i);

  // Everything else is closed: APIs 503, pages redirect to /maintenance.
  const closed = await anonymous.get('/api/admin/users');
  expect(closed.status()).toBe(503);
  expect(await closed.json()).toEqual({ message: 'Server is in maintenance mode' });
  const page = await anonymous.get('/photos', { maxRedirects: 0 });
  expect(page.status()).toBe(307);
  expect(page.headers()['location']).toBe('/maintenance');
  expect((await anonymous.post('/api/admin/maintenance', { data: { action: 'end' } })).status()).toBe(401);

  // A restore that fails (no admin in the dump): anonymous viewers see progress, never the error or the log.
  writeFileSync(
    join(instance.uploadLocation, 'backups', 'uploaded-empty.sql.gz'),
    gzipSync('--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.users (id int, is_admin boolean, deleted_at timestamptz);\n--\n-- PostgreSQL database dump complete\n--\n'),
  );
  expect((await request.post('/api/admin/maintenance', { data: { action: 'restore_database', restoreBackupFilename: 'nope.sql.gz' } })).status()).toBe(404);
  expect((await request.post('/api/admin/maintenance', { data: { action: 'restore_database', restoreBackupFilename: '../x.sql' } })).status()).toBe(400);
  const failing = await request.post('/api/admin/maintenance', { data: { action: 'restore_database', restoreBackupFilename: 'uploaded-empty.sql.gz' } });
  expect(failing.status()).toBe(201);
  await expect.poll(async () => (await statusOf(request)).task, { timeout: 60_000 }).toBe('error');
  const privileged = await statusOf(request);
  expect(privileged.error).toMatch(/^Restore failed: .*Rolled back to the database as it was before the restore: OK/s);
  expect(privileged.log.length).toBeGreaterThan(3);
  const seenByAnyone = await statusOf(anonymous);
  expect(seenByAnyone).toMatchObject({ active: true, task: 'error', error: 'Something went wrong, see logs!', log: [] });

  // The real restore, started in maintenance mode (it stays in it), then followed late over SSE.
  const restoring = await request.post('/api/admin/maintenance', { data: { action: 'restore_database', restoreBackupFilename: backup } });
  expect(restoring.status()).toBe(201);
  expect(await restoring.json()).toMatchObject({ active: true, action: 'restore_database', backup });
  const cookie = cookieHeader((await request.storageState()).cookies);
  const late = await readEvents(`${instance.baseURL}/api/admin/maintenance/events`, cookie, (status) => status.task === 'done');
  const first = late.events.find((event) => 'active' in event)!;
  // The first event carries the whole log since maintenance began.
  expect(first.log[0]).toMatch(/Maintenance mode started by api-admin@example.com/);
  expect(first.log.join('\n')).toContain('Restore of uploaded-empty.sql.gz started');
  const done = late.events[late.events.length - 1];
  expect(done).toMatchObject({ active: false, task: 'done', progress: 1 });
  expect(done.log.join('\n')).toContain(`Restore of ${backup} complete`);

  // The final status stays readable; the app is back, with the backup's data (no "later" user).
  expect(await statusOf(request)).toMatchObject({ active: false, task: 'done' });
  const anonymousEvents = await readEvents(`${instance.baseURL}/api/admin/maintenance/events`, '', () => true);
  expect(anonymousEvents.events.find((event) => 'active' in event)).toMatchObject({ task: 'done', log: [] });
  const users = await request.get('/api/admin/users');
  expect(users.status()).toBe(200);
  expect(JSON.stringify(await users.json())).not.toContain('later@example.com');
  await anonymous.dispose();
});

test('any admin may end maintenance; the maintenance admin too; anonymous may not', async ({ instance, request }) => {
  await signedInAdmin(request);
  const other = await playwrightRequest.newContext({ baseURL: instance.baseURL });
  expect((await other.post('/api/auth/login', { data: { email: ADMIN.email, password: ADMIN.password } })).status()).toBe(201);

  expect((await request.post('/api/admin/maintenance', { data: { action: 'start' } })).status()).toBe(201);
  // Another admin's session (no maintenance token) can end it.
  const ended = await other.post('/api/admin/maintenance', { data: { action: 'end' } });
  expect(ended.status()).toBe(200);
  expect(await ended.json()).toMatchObject({ active: false });
  expect((await other.get('/api/admin/users')).status()).toBe(200);
  await other.dispose();
});

test('the event stream sends the status at least once a second while a step runs', async ({ instance, request }) => {
  await signedInAdmin(request);
  const backup = await backUp(request);
  // Creating the staged database waits for this lock: the restore stays in its first ("restore") step.
  const release = await holdDatabaseCreation(instance);
  try {
    expect((await request.post('/api/admin/maintenance', { data: { action: 'restore_database', restoreBackupFilename: backup } })).status()).toBe(201);
    const cookie = cookieHeader((await request.storageState()).cookies);
    const started = Date.now();
    const { events } = await readEvents(`${instance.baseURL}/api/admin/maintenance/events`, cookie, () => Date.now() - started > 3500);
    const data = events.filter((event) => 'active' in event);
    expect(data.every((event) => event.task === 'restore')).toBe(true);
    expect(data.length).toBeGreaterThanOrEqual(4);
  } finally {
    await release();
  }
  await expect.poll(async () => (await statusOf(request)).task, { timeout: 60_000 }).toBe('done');
});
