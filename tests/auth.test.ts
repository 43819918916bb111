import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken, verifyPassword } from '../src/lib/server/services/auth.service';
import { ServiceError } from '../src/lib/server/errors';
import { startInstance, withClient, type TestInstance } from './helpers/pg';

const ADMIN = { email: 'Admin@Example.com', password: 'correct-horse-battery', name: 'Ada Admin' };

async function serviceError(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ServiceError);
    return error as ServiceError;
  }
  throw new Error('expected a ServiceError');
}

describe('AuthService and UserService on a real database', () => {
  let instance: TestInstance;
  const rows = (sql: string, params: unknown[] = []) => withClient(instance.database, async (client) => (await client.query(sql, params)).rows);

  beforeAll(async () => {
    instance = await startInstance();
  });
  afterAll(async () => {
    await instance?.close();
  });

  it('creates the admin once; a second admin sign-up is refused with 400', async () => {
    const { auth } = instance.app;
    expect(await auth.hasAdmin()).toBe(false);
    expect(await instance.app.isOnboarded()).toBe(false);
    const admin = await auth.adminSignUp(ADMIN);
    expect(admin).toMatchObject({ email: ADMIN.email, name: ADMIN.name, isAdmin: true });
    expect(await instance.app.isOnboarded()).toBe(true);

    const again = await serviceError(auth.adminSignUp({ email: 'second@example.com', password: 'another-password', name: 'Second' }));
    expect(again.status).toBe(400);
    expect(again.message).toBe('Admin setup is not available');
    expect(await rows('SELECT email FROM users')).toEqual([{ email: ADMIN.email }]);
  });

  it('stores the password as a salted scrypt hash, never the password', async () => {
    const [row] = await rows('SELECT password FROM users WHERE is_admin');
    expect(row.password).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(row.password).not.toContain(ADMIN.password);
    expect(await verifyPassword(ADMIN.password, row.password)).toBe(true);
    expect(await verifyPassword('wrong-password', row.password)).toBe(false);
    // Salted: the same password gives another hash for another user.
    await instance.app.userService.create({ email: 'same@example.com', password: ADMIN.password, name: 'Same' });
    const [other] = await rows("SELECT password FROM users WHERE email = 'same@example.com'");
    expect(other.password).not.toBe(row.password);
  });

  it('logs in (email in any case) and stores only the hash of the session token', async () => {
    const { accessToken, user, expiresAt } = await instance.app.auth.login({ email: 'admin@example.COM', password: ADMIN.password });
    expect(user).toMatchObject({ email: ADMIN.email, isAdmin: true });
    expect(accessToken.length).toBeGreaterThanOrEqual(40);
    expect(expiresAt.getTime()).toBeGreaterThan(Date.now());
    const sessions = await rows('SELECT token FROM sessions');
    expect(sessions).toContainEqual({ token: hashToken(accessToken) });
    expect(sessions.map((s) => s.token)).not.toContain(accessToken);
    expect(await instance.app.auth.validateToken(accessToken)).toMatchObject({ id: user.id, isAdmin: true });
    // The stored hash itself is not a token.
    expect(await instance.app.auth.validateToken(hashToken(accessToken))).toBeNull();
  });

  it('answers a wrong password and an unknown email with the same 401, revealing neither', async () => {
    const wrongPassword = await serviceError(instance.app.auth.login({ email: ADMIN.email, password: 'not-the-password' }));
    const unknownEmail = await serviceError(instance.app.auth.login({ email: 'nobody@example.com', password: ADMIN.password }));
    const empty = await serviceError(instance.app.auth.login({ email: undefined, password: undefined }));
    for (const error of [wrongPassword, unknownEmail, empty]) {
      expect(error.status).toBe(401);
      expect(error.message).toBe('Incorrect email or password');
    }
  });

  it('logout invalidates the session; an expired session is invalid too', async () => {
    const { auth } = instance.app;
    const first = await auth.login({ email: ADMIN.email, password: ADMIN.password });
    const second = await auth.login({ email: ADMIN.email, password: ADMIN.password });
    await auth.logout(first.accessToken);
    expect(await auth.validateToken(first.accessToken)).toBeNull();
    // Only that session ends.
    expect(await auth.validateToken(second.accessToken)).not.toBeNull();

    await rows("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token = $1", [hashToken(second.accessToken)]);
    expect(await auth.validateToken(second.accessToken)).toBeNull();
  });

  it('admins create ordinary users; input is validated and emails are unique', async () => {
    const { userService, auth } = instance.app;
    const user = await userService.create({ email: 'user@example.com', password: 'user-password', name: 'Uma User' });
    expect(user).toMatchObject({ email: 'user@example.com', name: 'Uma User', isAdmin: false });
    const login = await auth.login({ email: 'user@example.com', password: 'user-password' });
    expect(login.user.isAdmin).toBe(false);
    expect((await userService.list()).map((u) => u.email)).toEqual([ADMIN.email, 'same@example.com', 'user@example.com']);

    const duplicate = await serviceError(userService.create({ email: 'USER@example.com', password: 'user-password', name: 'Twin' }));
    expect(duplicate.status).toBe(409);
    for (const [input, message] of [
      [{ email: 'not-an-email', password: 'long-enough', name: 'X' }, /valid email/],
      [{ email: 'short@example.com', password: 'short', name: 'X' }, /at least 8 characters/],
      [{ email: 'noname@example.com', password: 'long-enough', name: '  ' }, /name/],
      [{ email: 42, password: ['array'], name: null }, /valid email/],
    ] as const) {
      const error = await serviceError(userService.create(input));
      expect(error.status).toBe(400);
      expect(error.message).toMatch(message);
    }
  });

  it('the same new email sent twice at once gives one user and one 409', async () => {
    const attempts = await Promise.allSettled([1, 2].map(() => instance.app.userService.create({ email: 'twice@example.com', password: 'twice-password', name: 'Twice' })));
    expect(attempts.map((a) => a.status).sort()).toEqual(['fulfilled', 'rejected']);
    const rejected = attempts.find((a): a is PromiseRejectedResult => a.status === 'rejected')!;
    expect(rejected.reason).toMatchObject({ status: 409 });
  });

  it("creates each new user's folders in UPLOAD_LOCATION", async () => {
    const [user] = await rows("SELECT id FROM users WHERE email = 'user@example.com'");
    for (const folder of ['upload', 'thumbs', 'encoded-video', 'profile']) {
      expect(existsSync(`${instance.uploadLocation}/${folder}/${user.id}`)).toBe(true);
    }
  });
});

describe('admin sign-up at the same moment', () => {
  let instance: TestInstance;
  beforeAll(async () => {
    instance = await startInstance();
  });
  afterAll(async () => {
    await instance?.close();
  });

  it('the repository creates one first admin however many ask at once', async () => {
    // Open the pool's connections first, so the attempts really overlap.
    await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(() => instance.app.db.query('SELECT pg_sleep(0.05)')));
    const attempts = await Promise.all(
      [1, 2, 3, 4, 5, 6, 7, 8].map((i) => instance.app.users.createFirstAdmin({ email: `race${i}@example.com`, password: 'x', name: `Race ${i}`, storageLabel: null })),
    );
    expect(attempts.filter(Boolean)).toHaveLength(1);
    await withClient(instance.database, (client) => client.query('DELETE FROM users'));
  });

  it('makes exactly one admin; the others get 400', async () => {
    const attempts = await Promise.allSettled(
      [1, 2, 3, 4].map((i) => instance.app.auth.adminSignUp({ email: `admin${i}@example.com`, password: 'correct-horse-battery', name: `Admin ${i}` })),
    );
    expect(attempts.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    for (const attempt of attempts.filter((a): a is PromiseRejectedResult => a.status === 'rejected')) {
      expect(attempt.reason).toBeInstanceOf(ServiceError);
      expect(attempt.reason).toMatchObject({ status: 400, message: 'Admin setup is not available' });
    }
    const admins = await withClient(instance.database, async (client) => (await client.query('SELECT count(*)::int AS n FROM users WHERE is_admin')).rows[0].n);
    expect(admins).toBe(1);
  });
});
