import { test as base, expect, type Page } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Instance {
  baseURL: string;
  uploadLocation: string;
  dbDataLocation: string;
  root: string;
  output(): string;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/**
 * Starts the built app (node server.js) on its own embedded database and UPLOAD_LOCATION.
 * `prepare` may lay files into UPLOAD_LOCATION first (an older instance's folders).
 */
export async function startInstance(prepare?: (uploadLocation: string) => void | Promise<void>): Promise<Instance> {
  const root = mkdtempSync(join(tmpdir(), 'lifeboat-e2e-'));
  chmodSync(root, 0o755);
  const uploadLocation = join(root, 'library');
  const dbDataLocation = join(root, 'postgres');
  mkdirSync(uploadLocation);
  await prepare?.(uploadLocation);
  const port = await freePort();
  let child: ChildProcess | null = null;
  let output = '';
  const baseURL = `http://127.0.0.1:${port}`;

  async function start() {
    child = spawn(process.execPath, ['server.js'], {
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', UPLOAD_LOCATION: uploadLocation, DB_DATA_LOCATION: dbDataLocation },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}):\n${output}`);
      try {
        const response = await fetch(`${baseURL}/api/server/version`);
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`server did not start:\n${output}`);
  }

  async function stop() {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((r) => running.once('exit', r));
    running.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    if (running.exitCode === null) running.kill('SIGKILL');
  }

  await start();
  return {
    baseURL,
    uploadLocation,
    dbDataLocation,
    root,
    output: () => output,
    async restart() {
      await stop();
      await start();
    },
    async stop() {
      await stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export const test = base.extend<{ instance: Instance }>({
  instance: async ({}, use) => {
    const instance = await startInstance();
    await use(instance);
    await instance.stop();
  },
  baseURL: async ({ instance }, use) => use(instance.baseURL),
});

export { expect };

export const ADMIN = { email: 'admin@example.com', password: 'correct-horse-battery', name: 'Ada Admin' };

export async function signUpAdmin(page: Page, admin = ADMIN) {
  await page.goto('/');
  await expect(page).toHaveURL(/\/welcome$/);
  await page.getByRole('link', { name: 'Getting started' }).click();
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Name').fill(admin.name);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByLabel('Confirm password').fill(admin.password);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await expect(page.getByRole('heading', { name: 'Administration' })).toBeVisible();
}

/** The setup code of an instance started over an old library, as its owner finds it: in the file, and the same in the log. */
export function setupCodeOf(instance: Instance): string {
  const code = readFileSync(join(instance.uploadLocation, '.lifeboat', 'setup-code'), 'utf8').trim();
  expect(instance.output()).toContain(`Setup code: ${code}`);
  return code;
}

export async function signIn(page: Page, user: { email: string; password: string }) {
  await page.goto('/auth/login');
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/photos/);
}
