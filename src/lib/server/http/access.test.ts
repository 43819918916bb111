import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { AuthUser } from '../services/auth.service';
import { adminRefusal, credentialsOf, credentialsOfNode, resolveAccess, type AccessDeps } from './access';

const ADMIN: AuthUser = { id: '1', email: 'a@example.com', name: 'A', isAdmin: true };
const USER: AuthUser = { id: '2', email: 'u@example.com', name: 'U', isAdmin: false };

/** Sessions by token, and a maintenance mode whose state the test sets; counts session look-ups. */
function deps(state: { active?: boolean; running?: boolean; token?: string } = {}) {
  const lookups: string[] = [];
  const sessions: Record<string, AuthUser> = { 'admin-token': ADMIN, 'user-token': USER };
  const fake: AccessDeps = {
    auth: { validateToken: async (token) => (lookups.push(token), sessions[token] ?? null) },
    maintenance: {
      isActive: () => Boolean(state.active),
      isRunning: () => Boolean(state.running),
      validateToken: (token) => Boolean(state.active && token && token === state.token),
    },
  };
  return { fake, lookups };
}

describe('credentials', () => {
  it('a Bearer token wins over the session cookie; the maintenance token comes from its cookie', () => {
    const event = (headers: Record<string, string>, cookies: Record<string, string>) => ({
      request: new Request('http://x/', { headers }),
      cookies: { get: (name: string) => cookies[name] } as never,
    });
    expect(credentialsOf(event({ authorization: 'Bearer abc' }, { immich_access_token: 'cookie' }))).toEqual({ sessionToken: 'abc', maintenanceToken: null });
    expect(credentialsOf(event({}, { immich_access_token: 'cookie', immich_maintenance_token: 'm' }))).toEqual({ sessionToken: 'cookie', maintenanceToken: 'm' });
    expect(credentialsOf(event({ authorization: 'Basic abc' }, {}))).toEqual({ sessionToken: null, maintenanceToken: null });
  });

  it('reads a plain Node request the same way (first value of a cookie, URI-decoded)', () => {
    const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
    expect(credentialsOfNode(req({ cookie: 'immich_maintenance_token=a%2Bb; immich_maintenance_token=second; immich_access_token=s' }))).toEqual({
      sessionToken: 's',
      maintenanceToken: 'a+b',
    });
    expect(credentialsOfNode(req({ authorization: 'bearer xyz', cookie: 'immich_access_token=s' })).sessionToken).toBe('xyz');
  });
});

describe('who may act', () => {
  it('outside maintenance: the session decides (401 anonymous, 403 non-admin); a maintenance token is nothing', async () => {
    const { fake } = deps({ token: 'm' });
    expect(adminRefusal(await resolveAccess(fake, { sessionToken: null, maintenanceToken: 'm' }))?.status).toBe(401);
    expect(adminRefusal(await resolveAccess(fake, { sessionToken: 'user-token', maintenanceToken: null }))?.status).toBe(403);
    expect(adminRefusal(await resolveAccess(fake, { sessionToken: 'admin-token', maintenanceToken: null }))).toBeNull();
  });

  it('in maintenance: the token holder acts; while a restore runs, sessions are not even looked up', async () => {
    const idle = deps({ active: true, token: 'm' });
    expect(await resolveAccess(idle.fake, { sessionToken: 'admin-token', maintenanceToken: 'm' })).toEqual({ user: null, maintenanceAdmin: true });
    expect(await resolveAccess(idle.fake, { sessionToken: 'admin-token', maintenanceToken: 'other' })).toEqual({ user: ADMIN, maintenanceAdmin: false });

    const running = deps({ active: true, running: true, token: 'm' });
    const access = await resolveAccess(running.fake, { sessionToken: 'admin-token', maintenanceToken: null });
    expect(adminRefusal(access)?.status).toBe(401);
    expect(running.lookups).toEqual([]);
  });

  it('in maintenance a session that cannot be read (database not migrated) is no session, not an error', async () => {
    const { fake } = deps({ active: true });
    fake.auth.validateToken = async () => {
      throw new Error('relation "sessions" does not exist');
    };
    expect(await resolveAccess(fake, { sessionToken: 'admin-token', maintenanceToken: null })).toEqual({ user: null, maintenanceAdmin: false });
  });
});
