import { readFileSync } from 'node:fs';
import { request } from '@playwright/test';
import { ADMIN, expect, test } from './fixtures';

const USER = { email: 'uma@example.com', password: 'uma-password-123', name: 'Uma User' };
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Logs in from a context of its own, so the session cookie it sets is not sent by anyone else. */
async function login(baseURL: string, user: { email: string; password: string }) {
  const context = await request.newContext({ baseURL });
  try {
    const response = await context.post('/api/auth/login', { data: { email: user.email, password: user.password } });
    expect(response.status()).toBe(201);
    return (await response.json()) as { accessToken: string; userId: string; isAdmin: boolean };
  } finally {
    await context.dispose();
  }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

test('server info, admin sign-up, login, and who may use the admin API', async ({ instance, playwright }) => {
  // Contexts keep cookies: `anonymous` never logs in (tokens go in Bearer headers), `api` holds the admin's cookie.
  const anonymous = await playwright.request.newContext({ baseURL: instance.baseURL });
  const api = await playwright.request.newContext({ baseURL: instance.baseURL });

  // Server info: same paths and shapes as the reference server.
  const versionResponse = await anonymous.get('/api/server/version');
  expect(versionResponse.status()).toBe(200);
  const [major, minor, patch] = version.split('.').map(Number);
  expect(await versionResponse.json()).toEqual({ major, minor, patch });
  const before = await anonymous.get('/api/server/config');
  expect(before.status()).toBe(200);
  expect(await before.json()).toMatchObject({ isOnboarded: false, maintenanceMode: false });

  // Admin sign-up: once.
  const signUp = await anonymous.post('/api/auth/admin-sign-up', { data: ADMIN });
  expect(signUp.status()).toBe(201);
  expect(await signUp.json()).toMatchObject({ email: ADMIN.email, name: ADMIN.name, isAdmin: true });
  expect(JSON.stringify(await signUp.json())).not.toContain(ADMIN.password);
  const again = await anonymous.post('/api/auth/admin-sign-up', { data: { email: 'other@example.com', password: 'other-password', name: 'Other' } });
  expect(again.status()).toBe(400);
  expect(await again.json()).toEqual({ message: 'Admin setup is not available' });
  expect(await (await anonymous.get('/api/server/config')).json()).toMatchObject({ isOnboarded: true, maintenanceMode: false });

  // A wrong password and an unknown email get the same 401: neither is revealed.
  const wrongPassword = await anonymous.post('/api/auth/login', { data: { email: ADMIN.email, password: 'not-the-password' } });
  const unknownEmail = await anonymous.post('/api/auth/login', { data: { email: 'nobody@example.com', password: ADMIN.password } });
  expect(wrongPassword.status()).toBe(401);
  expect(unknownEmail.status()).toBe(401);
  expect(await wrongPassword.json()).toEqual({ message: 'Incorrect email or password' });
  expect(await unknownEmail.json()).toEqual(await wrongPassword.json());
  expect(wrongPassword.headers()['set-cookie']).toBeUndefined();

  // Login: a token in the body and an HttpOnly, SameSite=Lax session cookie.
  const adminLogin = await api.post('/api/auth/login', { data: { email: ADMIN.email, password: ADMIN.password } });
  expect(adminLogin.status()).toBe(201);
  const adminSession = await adminLogin.json();
  expect(adminSession).toMatchObject({ accessToken: expect.any(String), userId: expect.any(String), isAdmin: true });
  const cookie = adminLogin.headers()['set-cookie'];
  expect(cookie).toContain(`immich_access_token=${adminSession.accessToken}`);
  expect(cookie).toMatch(/HttpOnly/i);
  expect(cookie).toMatch(/SameSite=Lax/i);
  expect(cookie).toMatch(/Path=\//i);

  // Anonymous → 401; admin by cookie or by Bearer token → 200.
  expect((await anonymous.get('/api/admin/users')).status()).toBe(401);
  expect((await anonymous.post('/api/admin/users', { data: USER })).status()).toBe(401);
  expect((await anonymous.get('/api/admin/users', { headers: bearer('not-a-real-token') })).status()).toBe(401);
  const byCookie = await api.get('/api/admin/users');
  expect(byCookie.status()).toBe(200);
  const byBearer = await anonymous.get('/api/admin/users', { headers: bearer(adminSession.accessToken) });
  expect(byBearer.status()).toBe(200);
  const list = await byBearer.json();
  expect(list).toEqual([expect.objectContaining({ id: adminSession.userId, email: ADMIN.email, name: ADMIN.name, isAdmin: true })]);
  expect(JSON.stringify(list)).not.toMatch(/scrypt|password/);

  // The admin creates an ordinary user.
  const created = await anonymous.post('/api/admin/users', { headers: bearer(adminSession.accessToken), data: USER });
  expect(created.status()).toBe(201);
  expect(await created.json()).toMatchObject({ email: USER.email, name: USER.name, isAdmin: false });
  const duplicate = await anonymous.post('/api/admin/users', { headers: bearer(adminSession.accessToken), data: USER });
  expect(duplicate.status()).toBe(409);
  const invalid = await anonymous.post('/api/admin/users', { headers: bearer(adminSession.accessToken), data: { email: 'x@example.com', password: 'short', name: 'X' } });
  expect(invalid.status()).toBe(400);
  expect((await invalid.json()).message).toMatch(/at least 8 characters/);
  const users = await (await anonymous.get('/api/admin/users', { headers: bearer(adminSession.accessToken) })).json();
  expect(users.map((u: { email: string }) => u.email)).toEqual([ADMIN.email, USER.email]);

  // A non-admin is known (not 401) but refused (403).
  const userLogin = await login(instance.baseURL, USER);
  expect(userLogin.isAdmin).toBe(false);
  const userToken = userLogin.accessToken;
  const refused = await anonymous.get('/api/admin/users', { headers: bearer(userToken) });
  expect(refused.status()).toBe(403);
  expect((await refused.json()).message).toMatch(/administrators only/);
  expect((await anonymous.post('/api/admin/users', { headers: bearer(userToken), data: { email: 'sneaky@example.com', password: 'sneaky-password', name: 'Sneaky' } })).status()).toBe(403);

  // Malformed JSON is the client's error.
  for (const path of ['/api/auth/login', '/api/auth/admin-sign-up', '/api/admin/users']) {
    const response = await anonymous.post(path, {
      headers: { ...bearer(adminSession.accessToken), 'content-type': 'application/json' },
      data: Buffer.from('{"email": "broken'),
    });
    expect(response.status(), path).toBe(400);
    expect(await response.json()).toEqual({ message: 'The request body must be JSON' });
  }
  // JSON that is not an object is refused too, rather than read as an empty form.
  for (const body of ['"admin@example.com"', '[1, 2]', 'null', '42']) {
    const response = await anonymous.post('/api/auth/login', { headers: { 'content-type': 'application/json' }, data: Buffer.from(body) });
    expect(response.status(), body).toBe(400);
    expect(await response.json()).toEqual({ message: 'The request body must be a JSON object' });
  }

  // Logout ends that session only.
  const logout = await anonymous.post('/api/auth/logout', { headers: bearer(userToken) });
  expect(logout.status()).toBe(200);
  expect((await anonymous.get('/api/admin/users', { headers: bearer(userToken) })).status()).toBe(401);
  expect((await anonymous.get('/api/admin/users', { headers: bearer(adminSession.accessToken) })).status()).toBe(200);
  const cookieLogout = await api.post('/api/auth/logout');
  expect(cookieLogout.status()).toBe(200);
  expect((await api.get('/api/admin/users')).status()).toBe(401);
  expect((await anonymous.get('/api/admin/users', { headers: bearer(adminSession.accessToken) })).status()).toBe(401);

  await anonymous.dispose();
  await api.dispose();
});
