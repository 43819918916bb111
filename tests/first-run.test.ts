import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Lifeboat } from '../src/lib/server/app';
import { loadConfig } from '../src/lib/server/config';
import { adminRefusal, resolveAccess, type Credentials } from '../src/lib/server/http/access';
import { handleUpload, UPLOAD_PATH } from '../src/lib/server/http/upload-route';
import { ServiceError } from '../src/lib/server/errors';
import { startInstance, type TestInstance } from './helpers/pg';
import { finished, seed } from './restore-helpers';

const ADMIN = { email: 'owner@example.com', password: 'correct-horse-battery', name: 'Owner' };
const STRANGER: Credentials = { sessionToken: null, maintenanceToken: null };
const CODE_MESSAGE = /Enter the setup code printed in the server log at start, or found in .*\/\.lifeboat\/setup-code\./;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Reinstall {
  instance: TestInstance;
  backup: string;
  code: string;
  codeFile: string;
  logs: string[];
}

/**
 * A reinstall over an old library: UPLOAD_LOCATION/backups holds the old instance's backup
 * (with its admin), and the database has no admin. Started as the web server starts (init).
 */
async function reinstalled(): Promise<Reinstall> {
  const logs: string[] = [];
  const instance = await startInstance({ log: (line) => logs.push(line) });
  cleanups.push(() => instance.close());
  const { app } = instance;
  await seed(app.db, { assets: 20, tag: 'old' });
  const { filename } = await app.backups.createBackup();
  await app.db.query('TRUNCATE users CASCADE');
  await app.firstRun.announce();
  const codeFile = join(instance.uploadLocation, '.lifeboat', 'setup-code');
  return { instance, backup: filename, code: readFileSync(codeFile, 'utf8').trim(), codeFile, logs };
}

async function refusal(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ServiceError);
    return error as ServiceError;
  }
  throw new Error('expected a refusal');
}

/** What an admin API route answers before it runs (hooks.server.ts → requireAdmin): 200 when let through. */
async function adminApiStatus(instance: TestInstance, credentials: Credentials): Promise<number> {
  return adminRefusal(await resolveAccess(instance.app, credentials))?.status ?? 200;
}

/** The upload route as server.js mounts it, over real HTTP. */
async function uploadServer(instance: TestInstance) {
  const server = http.createServer((req, res) => {
    if (req.url === UPLOAD_PATH && req.method === 'POST') handleUpload(req, res, instance.app);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${UPLOAD_PATH}`;
  return async (name: string, content: Buffer, maintenanceToken?: string) => {
    const body = new FormData();
    body.append('file', new Blob([new Uint8Array(content)]), name);
    const headers: Record<string, string> = maintenanceToken ? { cookie: `immich_maintenance_token=${encodeURIComponent(maintenanceToken)}` } : {};
    const response = await fetch(url, { method: 'POST', body, headers });
    return { status: response.status, body: (await response.json()) as { message?: string; filename?: string } };
  };
}

describe('a reinstall over an old library (backups in the folder, no admin)', () => {
  it('prints a setup code at start and keeps it in a file only the server user may read', async () => {
    const { code, codeFile, logs, instance } = await reinstalled();
    expect(code).toMatch(/^[0-9A-Z]{4}(-[0-9A-Z]{4}){4}$/);
    expect(statSync(codeFile).mode & 0o777).toBe(0o600);
    expect(logs.filter((line) => line.includes(`Setup code: ${code}`))).toHaveLength(1);
    expect(logs.join('\n')).toContain(codeFile);

    expect(await instance.app.firstRun.prompt()).toEqual({ file: codeFile });

    // Another start on the same folders keeps the code, so the line of an earlier start still holds.
    const restartLogs: string[] = [];
    const restarted = await Lifeboat.start(loadConfig(instance.env), { log: (line) => restartLogs.push(line) });
    try {
      await restarted.firstRun.announce();
    } finally {
      await restarted.shutdown();
    }
    expect(readFileSync(codeFile, 'utf8').trim()).toBe(code);
    expect(restartLogs.join('\n')).toContain(`Setup code: ${code}`);
  });

  it('refuses a stranger sign-up, start-restore, list, download, upload and restore without the code', async () => {
    const { instance, backup, code } = await reinstalled();
    const { app } = instance;
    const upload = await uploadServer(instance);

    const missing = await refusal(app.firstRun.signUpAdmin(ADMIN, undefined));
    expect(missing.status).toBe(401);
    expect(missing.message).toMatch(CODE_MESSAGE);
    const wrong = await refusal(app.firstRun.signUpAdmin(ADMIN, 'AAAA-BBBB-CCCC-DDDD-EEEE'));
    expect(wrong.status).toBe(403);
    expect(wrong.message).toMatch(/^That setup code is not right\. Enter the setup code/);
    // Close is not enough: one character off.
    const last = code.at(-1) === '0' ? '1' : '0';
    expect((await refusal(app.firstRun.signUpAdmin(ADMIN, code.slice(0, -1) + last))).status).toBe(403);
    expect(await app.auth.hasAdmin()).toBe(false);

    for (const given of [undefined, '', 42, 'AAAA-BBBB-CCCC-DDDD-EEEE']) {
      const refused = await refusal(app.firstRun.startRestore(given));
      expect(refused.status, String(given)).toBe(given === 'AAAA-BBBB-CCCC-DDDD-EEEE' ? 403 : 401);
      expect(refused.message).toMatch(CODE_MESSAGE);
    }
    expect(app.maintenance.isActive()).toBe(false);

    // Without the token that only the code gets, the list, download and restore routes answer 401 …
    expect(await adminApiStatus(instance, STRANGER)).toBe(401);
    expect(await adminApiStatus(instance, { sessionToken: 'forged', maintenanceToken: 'forged' })).toBe(401);
    // … and so does the upload route, which server.js serves before SvelteKit.
    const uploaded = await upload('stranger.sql.gz', readFileSync(join(app.backups.backupsFolder, backup)));
    expect(uploaded.status).toBe(401);
    expect(uploaded.body.message).toBe('Authentication required');
    expect((await upload('stranger.sql.gz', Buffer.from('x'), 'forged')).status).toBe(401);
    expect((await app.backups.listBackups()).map((b) => b.filename)).toEqual([backup]);
  });

  it('with the code: the wizard token lists, downloads, uploads and restores; then the code opens nothing', async () => {
    const { instance, backup, code, codeFile } = await reinstalled();
    const { app } = instance;
    const upload = await uploadServer(instance);

    // Typed as a person might: lower case, without dashes.
    const token = await app.firstRun.startRestore(code.toLowerCase().replace(/-/g, ''));
    expect(app.maintenance.validateToken(token)).toBe(true);
    const owner: Credentials = { sessionToken: null, maintenanceToken: token };
    expect(await adminApiStatus(instance, owner)).toBe(200);
    // A second browser without the code does not join the owner's maintenance.
    expect((await refusal(app.firstRun.startRestore(undefined))).status).toBe(401);
    expect(await adminApiStatus(instance, STRANGER)).toBe(401);

    // List and download (the routes' service calls, once access.ts let the token through).
    expect((await app.backups.listBackups()).map((b) => b.filename)).toContain(backup);
    const { stream, size } = await app.backups.openBackup(backup);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).length).toBe(size);

    // Upload, over HTTP with the wizard's cookie.
    const uploaded = await upload('copy.sql.gz', Buffer.concat(chunks), token);
    expect(uploaded.status, uploaded.body.message).toBe(201);
    expect(uploaded.body.filename).toMatch(/^uploaded-.*copy\.sql\.gz$/);

    // Restore: the old instance, with its admin, is back.
    await app.restore.startRestore(backup, { by: 'the maintenance administrator', token });
    const status = await finished(app);
    expect(status.error).toBeNull();
    expect(status.task).toBe('done');
    expect(await app.auth.hasAdmin()).toBe(true);

    // An admin exists: the code opens nothing any more, and its file is gone.
    expect(await refusal(app.firstRun.startRestore(code))).toMatchObject({ status: 400, message: 'Admin setup is not available' });
    expect(await refusal(app.firstRun.signUpAdmin(ADMIN, code))).toMatchObject({ status: 400, message: 'Admin setup is not available' });
    expect(existsSync(codeFile)).toBe(false);
    expect(await app.firstRun.prompt()).toBeNull();
  });

  it('signs up the admin with the code; afterwards the code no longer works', async () => {
    const { instance, code, codeFile, logs } = await reinstalled();
    const { app } = instance;

    const admin = await app.firstRun.signUpAdmin(ADMIN, ` ${code} `);
    expect(admin).toMatchObject({ email: ADMIN.email, isAdmin: true });
    expect(existsSync(codeFile)).toBe(false);
    expect(logs.at(-1)).toBe('Setup code removed: an admin exists');

    expect(await refusal(app.firstRun.signUpAdmin({ ...ADMIN, email: 'second@example.com' }, code))).toMatchObject({ status: 400, message: 'Admin setup is not available' });
    expect(await refusal(app.firstRun.startRestore(code))).toMatchObject({ status: 400, message: 'Admin setup is not available' });
    expect(app.maintenance.isActive()).toBe(false);
    // The admin's own session is what opens the backups now.
    const { accessToken } = await app.auth.login(ADMIN);
    expect(await adminApiStatus(instance, { sessionToken: accessToken, maintenanceToken: null })).toBe(200);
  });

  it('replaces a code file that others could read, and makes the code when backups appear after start', async () => {
    const logs: string[] = [];
    const instance = await startInstance({ log: (line) => logs.push(line) });
    cleanups.push(() => instance.close());
    const { app } = instance;
    const codeFile = join(instance.uploadLocation, '.lifeboat', 'setup-code');

    // An empty install at start: no code.
    await app.firstRun.announce();
    expect(existsSync(codeFile)).toBe(false);
    expect(logs.join('\n')).not.toContain('Setup code');

    // Backups copied in while it runs, with a world-readable code file beside them: a new code is made and printed.
    await seed(app.db, { assets: 5, tag: 'late' });
    await app.backups.createBackup();
    await app.db.query('TRUNCATE users CASCADE');
    writeFileSync(codeFile, 'AAAA-BBBB-CCCC-DDDD-EEEE\n', { mode: 0o644 });
    expect((await refusal(app.firstRun.startRestore('AAAA-BBBB-CCCC-DDDD-EEEE'))).status).toBe(403);
    const code = readFileSync(codeFile, 'utf8').trim();
    expect(code).not.toBe('AAAA-BBBB-CCCC-DDDD-EEEE');
    expect(statSync(codeFile).mode & 0o777).toBe(0o600);
    expect(logs.join('\n')).toContain(`Setup code: ${code}`);
    expect(app.maintenance.validateToken(await app.firstRun.startRestore(code))).toBe(true);
  });
});

describe('a brand-new, empty install (no backups)', () => {
  it('needs no code, as the reference server: start-restore, then sign-up; no code file is made', async () => {
    const logs: string[] = [];
    const instance = await startInstance({ log: (line) => logs.push(line) });
    cleanups.push(() => instance.close());
    const { app } = instance;
    await app.firstRun.announce();
    expect(await app.firstRun.prompt()).toBeNull();

    const token = await app.firstRun.startRestore(undefined);
    expect(app.maintenance.validateToken(token)).toBe(true);
    expect(await adminApiStatus(instance, { sessionToken: null, maintenanceToken: token })).toBe(200);
    await app.maintenance.end();

    expect(await app.firstRun.signUpAdmin(ADMIN, undefined)).toMatchObject({ isAdmin: true });
    expect(existsSync(join(instance.uploadLocation, '.lifeboat', 'setup-code'))).toBe(false);
    expect(logs.join('\n')).not.toContain('Setup code');
    // Once an admin exists, start-restore is closed.
    expect(await refusal(app.firstRun.startRestore(undefined))).toMatchObject({ status: 400, message: 'Admin setup is not available' });
  });
});
