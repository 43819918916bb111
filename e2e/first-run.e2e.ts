import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { ADMIN, expect, signIn, test } from './fixtures';

const USER = { email: 'uma@example.com', password: 'uma-password-123', name: 'Uma User' };

async function shot(page: Page, name: string) {
  await page.screenshot({ path: test.info().outputPath(`${name}.png`), fullPage: true });
}

async function signOut(page: Page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/auth\/login$/);
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
}

test('first run: Welcome → Getting started → admin → Administration → sign out; a user is refused; a restart keeps the admin', async ({ page, instance }) => {
  // Before an admin exists, every page leads to Welcome.
  for (const path of ['/', '/photos', '/admin', '/admin/users', '/auth/login', '/no-such-page']) {
    await page.goto(path);
    await expect(page, `${path} leads to Welcome`).toHaveURL(/\/welcome$/);
  }
  await expect(page.getByRole('heading', { name: 'Welcome' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Restore from backup' })).toBeVisible();
  await shot(page, 'welcome');

  // Getting started → create the admin account (keyboard only: labels, Tab order and Enter work).
  await page.getByRole('link', { name: 'Getting started' }).click();
  await expect(page).toHaveURL(/\/auth\/register$/);
  await expect(page.getByRole('heading', { name: 'Create the admin account' })).toBeVisible();
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Name').fill(ADMIN.name);
  await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
  await page.getByLabel('Confirm password').fill('something else');
  await page.getByLabel('Confirm password').press('Enter');
  await expect(page.getByRole('alert')).toHaveText('The passwords do not match');
  await page.getByLabel('Confirm password').fill(ADMIN.password);
  await shot(page, 'register');
  await page.getByLabel('Confirm password').press('Enter');

  // Signed in, in the Administration area, with its navigation.
  await expect(page).toHaveURL(/\/admin$/);
  await expect(page.getByRole('heading', { name: 'Administration', level: 1 })).toBeVisible();
  await expect(page.getByTestId('current-user')).toContainText(ADMIN.email);
  await shot(page, 'administration');
  const adminNav = page.getByRole('navigation', { name: 'Administration' });
  for (const [link, heading] of [
    ['Users', 'Users'],
    ['Job Queues', 'Job Queues'],
    ['Settings', 'Settings'],
    ['Maintenance', 'Maintenance'],
  ]) {
    await adminNav.getByRole('link', { name: link }).click();
    await expect(page.getByRole('heading', { name: heading, level: 1 })).toBeVisible();
    await expect(adminNav.getByRole('link', { name: link })).toHaveAttribute('aria-current', 'page');
  }
  // Once there is an admin, Welcome and sign-up are closed.
  await page.goto('/welcome');
  await expect(page).toHaveURL(/\/photos$/);
  await page.goto('/auth/register');
  await expect(page).toHaveURL(/\/photos$/);

  // Sign out → back to sign-in; pages need a session again.
  await signOut(page);
  await page.goto('/admin/users');
  await expect(page).toHaveURL(/\/auth\/login\?continue=%2Fadmin%2Fusers$/);
  await shot(page, 'sign-in');

  // Sign in again (returns to the page asked for), and create an ordinary user on the Users page.
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Password').fill('wrong-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Incorrect email or password');
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/admin\/users$/);
  await expect(page.getByRole('heading', { name: 'Users', level: 1 })).toBeVisible();
  await page.getByLabel('Email').fill(USER.email);
  await page.getByLabel('Name').fill(USER.name);
  await page.getByLabel('Password').fill(USER.password);
  await page.getByRole('button', { name: 'Create user' }).click();
  const row = page.getByRole('row').filter({ hasText: USER.email });
  await expect(row.getByRole('cell', { name: USER.name, exact: true })).toBeVisible();
  await expect(row.getByRole('cell', { name: 'User', exact: true })).toBeVisible();
  await expect(page.getByLabel('Email')).toHaveValue('');
  // The same email twice is refused with a message.
  await page.getByLabel('Email').fill(USER.email);
  await page.getByLabel('Name').fill('Twin');
  await page.getByLabel('Password').fill(USER.password);
  await page.getByRole('button', { name: 'Create user' }).click();
  await expect(page.getByRole('alert')).toHaveText('A user with this email already exists');
  await shot(page, 'users');
  await signOut(page);

  // The ordinary user: no Administration link, and /admin is refused with 403.
  await signIn(page, USER);
  await expect(page.getByRole('heading', { name: 'Photos' })).toBeVisible();
  await expect(page.getByTestId('current-user')).toContainText(USER.email);
  await expect(page.getByRole('link', { name: 'Administration' })).toHaveCount(0);
  for (const path of ['/admin', '/admin/users', '/admin/maintenance']) {
    const response = await page.goto(path);
    expect(response?.status(), path).toBe(403);
    await expect(page.getByText('403')).toBeVisible();
    await expect(page.getByRole('heading', { name: 'Administration is for administrators only' })).toBeVisible();
  }
  await shot(page, 'user-refused');
  await page.goto('/photos');
  await signOut(page);

  // Stopping and starting the instance keeps the admin (and the user).
  await instance.restart();
  await page.goto('/');
  await expect(page).toHaveURL(/\/auth\/login(\?continue=%2F)?$/);
  // A "continue" address on another site is ignored after sign-in.
  await page.goto('/auth/login?continue=%2F%5Cexample.com');
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/photos$/);
  await page.goto('/admin/users');
  await expect(page.getByRole('row').filter({ hasText: ADMIN.email }).getByRole('cell', { name: 'Admin', exact: true })).toBeVisible();
  await expect(page.getByRole('row').filter({ hasText: USER.email })).toBeVisible();
});

test('the server refuses to start on a bad configuration, naming the variable and the fix', async () => {
  const root = mkdtempSync(join(tmpdir(), 'lifeboat-badconfig-'));
  const file = join(root, 'a-file');
  writeFileSync(file, '');
  try {
    for (const [env, message] of [
      [{ PORT: 'abc' }, 'Invalid configuration: PORT is "abc", not a port number. Set PORT to a whole number between 1 and 65535.'],
      [{ DB_URL: 'nonsense' }, 'Invalid configuration: DB_URL is not a valid URL. Use the form postgresql://user:password@host:5432/immich.'],
      [{ UPLOAD_LOCATION: join(file, 'library') }, `UPLOAD_LOCATION (${join(file, 'library')}) cannot be created`],
    ] as const) {
      const base = { PORT: String(40000 + Math.floor(Math.random() * 20000)), UPLOAD_LOCATION: join(root, 'library'), DB_DATA_LOCATION: join(root, 'postgres') };
      const result = spawnSync(process.execPath, ['server.js'], {
        env: { ...process.env, ...base, ...env },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(result.status, JSON.stringify(env)).toBe(1);
      expect(result.stderr).toContain(`[lifeboat] Failed to start: ${message}`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
