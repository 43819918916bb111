import type { IncomingMessage } from 'node:http';
import type { Cookies, RequestEvent } from '@sveltejs/kit';
import { SESSION_COOKIE, type AuthService, type AuthUser } from '../services/auth.service';
import { forbidden, unauthorized, type ServiceError } from '../errors';
import { MAINTENANCE_COOKIE, type MaintenanceService } from '../services/maintenance.service';

/**
 * Who is asking and what they may do: the one place that reads a request's credentials (a
 * Bearer token, the session cookie, the maintenance token), hands them out as cookies, and
 * decides. Used by hooks.server.ts (every SvelteKit route), the upload route that server.js
 * serves before SvelteKit, and logout.
 */

/** What a request carries to say who sends it. */
export interface Credentials {
  /** A Bearer token, else the session cookie. */
  sessionToken: string | null;
  maintenanceToken: string | null;
}

export interface Access {
  user: AuthUser | null;
  /** Holds a token of an admin (browser) who started or joined the maintenance mode that is on. */
  maintenanceAdmin: boolean;
}

export interface AccessDeps {
  auth: Pick<AuthService, 'validateToken'>;
  maintenance: Pick<MaintenanceService, 'isActive' | 'isRunning' | 'validateToken'>;
}

function readCredentials(authorization: string | null | undefined, cookie: (name: string) => string | undefined): Credentials {
  const bearer = authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
  return { sessionToken: bearer ?? cookie(SESSION_COOKIE) ?? null, maintenanceToken: cookie(MAINTENANCE_COOKIE) ?? null };
}

export function credentialsOf(event: Pick<RequestEvent, 'request' | 'cookies'>): Credentials {
  return readCredentials(event.request.headers.get('authorization'), (name) => event.cookies.get(name));
}

/** The same, for a plain Node request (the upload route, served before SvelteKit). */
export function credentialsOfNode(req: IncomingMessage): Credentials {
  const cookies = parseCookies(req.headers.cookie);
  return readCredentials(req.headers.authorization, (name) => cookies[name]);
}

/**
 * The maintenance token counts while maintenance mode is on. A session counts outside it, and
 * inside it only while no restore may be replacing the sessions table (then it is not even
 * looked up: the database may be locked, and the sessions it holds may be another instance's).
 */
export async function resolveAccess({ auth, maintenance }: AccessDeps, credentials: Credentials): Promise<Access> {
  const sessionUser = () => (credentials.sessionToken ? auth.validateToken(credentials.sessionToken) : Promise.resolve(null));
  if (!maintenance.isActive()) return { user: await sessionUser(), maintenanceAdmin: false };
  const maintenanceAdmin = maintenance.validateToken(credentials.maintenanceToken ?? undefined);
  if (maintenanceAdmin || maintenance.isRunning()) return { user: null, maintenanceAdmin };
  // In maintenance mode the database may not take this version's queries: no session then, not an error.
  return { user: await sessionUser().catch(() => null), maintenanceAdmin };
}

/** The admin APIs' rule: the maintenance admin, or an admin's session. Null when allowed, else the refusal (401 or 403). */
export function adminRefusal(access: Access): ServiceError | null {
  if (access.maintenanceAdmin) return null;
  if (!access.user) return unauthorized();
  if (!access.user.isAdmin) return forbidden();
  return null;
}

/**
 * Who may read a maintenance operation's error and log: the maintenance admin, an admin's
 * session, or the holder of a token of the maintenance period that just ended (the page that
 * watched a restore finish). Everyone else sees progress only.
 */
export function canSeeMaintenanceDetails(
  event: Pick<RequestEvent, 'request' | 'cookies' | 'locals'>,
  maintenance: Pick<MaintenanceService, 'ownsToken'>,
): boolean {
  const { locals } = event;
  return locals.maintenanceAdmin || Boolean(locals.user?.isAdmin) || maintenance.ownsToken(credentialsOf(event).maintenanceToken ?? undefined);
}

export function setSessionCookie(cookies: Cookies, token: string, expires: Date, secure: boolean): void {
  cookies.set(SESSION_COOKIE, token, { path: '/', httpOnly: true, sameSite: 'lax', secure, expires });
}

export function clearSessionCookie(cookies: Cookies): void {
  cookies.delete(SESSION_COOKIE, { path: '/' });
}

/** The browser that started (or joined) maintenance keeps acting while the sessions table is replaced. */
export function setMaintenanceCookie(cookies: Cookies, token: string, secure: boolean): void {
  cookies.set(MAINTENANCE_COOKIE, token, { path: '/', httpOnly: true, sameSite: 'lax', secure });
}

/** A Cookie header: the first value of each name, URI-decoded when it can be. */
function parseCookies(header: string | undefined): Record<string, string> {
  const cookies: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const index = part.indexOf('=');
    if (index < 0) continue;
    const name = part.slice(0, index).trim();
    if (!name || name in cookies) continue;
    try {
      cookies[name] = decodeURIComponent(part.slice(index + 1).trim());
    } catch {
      cookies[name] = part.slice(index + 1).trim();
    }
  }
  return cookies;
}
