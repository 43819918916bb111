import { json, redirect, type Handle, type HandleServerError, type ServerInit } from '@sveltejs/kit';
import { Lifeboat } from '$lib/server/app';
import { loadConfig } from '$lib/server/config';
import { instance, setInstance } from '$lib/server/instance';
import { SESSION_COOKIE } from '$lib/server/services/auth.service';
import { MAINTENANCE_COOKIE } from '$lib/server/services/maintenance.service';
import { registerNodeBridge } from '$lib/server/http/node-bridge';

export const init: ServerInit = async () => {
  const app = await Lifeboat.start(loadConfig());
  setInstance(app);
  registerNodeBridge(app);
};

/** Paths that work while maintenance mode is on: the maintenance page and what it needs. */
function allowedInMaintenance(path: string): boolean {
  return (
    path === '/maintenance' ||
    path.startsWith('/api/admin/maintenance') ||
    path.startsWith('/api/admin/database-backups') ||
    path.startsWith('/api/server/') ||
    path.startsWith('/_app/') ||
    path === '/favicon.svg'
  );
}

const PUBLIC_PAGES = ['/welcome', '/auth/login', '/auth/register'];

export const handle: Handle = async ({ event, resolve }) => {
  const app = instance();
  const path = event.url.pathname;
  const isApi = path.startsWith('/api/');
  const maintenanceToken = event.cookies.get(MAINTENANCE_COOKIE);
  event.locals.maintenanceAdmin = app.maintenance.validateToken(maintenanceToken);
  event.locals.user = null;

  if (app.maintenance.isActive()) {
    if (!allowedInMaintenance(path)) {
      if (isApi) return json({ message: 'Server is in maintenance mode' }, { status: 503 });
      redirect(307, '/maintenance');
    }
    return resolve(event);
  }

  const bearer = event.request.headers.get('authorization')?.match(/^Bearer\s+(.+)$/i)?.[1];
  const token = bearer ?? event.cookies.get(SESSION_COOKIE);
  if (token) event.locals.user = await app.auth.validateToken(token);

  if (!isApi && !path.startsWith('/_app/')) {
    if (path === '/maintenance') redirect(307, '/');
    const onboarded = await app.isOnboarded();
    if (!onboarded && !PUBLIC_PAGES.includes(path)) redirect(307, '/welcome');
    if (onboarded && (path === '/welcome' || path === '/auth/register')) redirect(307, event.locals.user ? '/photos' : '/auth/login');
    if (!PUBLIC_PAGES.includes(path) && !event.locals.user) redirect(307, `/auth/login?continue=${encodeURIComponent(path)}`);
  }
  return resolve(event);
};

export const handleError: HandleServerError = ({ error, status }) => {
  if (status !== 404) console.error('[lifeboat] unexpected error', error);
  return { message: status === 404 ? 'Not found' : 'Internal error, see the server log' };
};
