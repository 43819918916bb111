import { json, redirect, type Handle, type HandleServerError, type ServerInit } from '@sveltejs/kit';
import { Lifeboat } from '$lib/server/app';
import { loadConfig } from '$lib/server/config';
import { instance, setInstance } from '$lib/server/instance';
import { credentialsOf, resolveAccess } from '$lib/server/http/access';
import { registerNodeBridge } from '$lib/server/http/node-bridge';
import { registerUploadRoute } from '$lib/server/http/upload-route';

export const init: ServerInit = async () => {
  const app = await Lifeboat.start(loadConfig());
  setInstance(app);
  registerNodeBridge(app);
  registerUploadRoute(app);
  // On a reinstall over an old library: the setup code, in the log at start.
  await app.firstRun.announce();
  await app.startScheduler();
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
  const inMaintenance = app.maintenance.isActive();

  if (inMaintenance && !allowedInMaintenance(path)) {
    if (isApi) return json({ message: 'Server is in maintenance mode' }, { status: 503 });
    redirect(307, '/maintenance');
  }
  // Who is asking, by the rules of access.ts (the upload route uses the same).
  const { user, maintenanceAdmin } = await resolveAccess(app, credentialsOf(event));
  event.locals.user = user;
  event.locals.maintenanceAdmin = maintenanceAdmin;
  if (inMaintenance) return resolve(event);

  if (!isApi && !path.startsWith('/_app/')) {
    if (path === '/maintenance') redirect(307, '/');
    const onboarded = await app.isOnboarded();
    // Before the first admin exists there is nobody to sign in: every page leads to Welcome.
    if (!onboarded && path !== '/welcome' && path !== '/auth/register') redirect(307, '/welcome');
    if (onboarded && (path === '/welcome' || path === '/auth/register')) redirect(307, event.locals.user ? '/photos' : '/auth/login');
    if (!PUBLIC_PAGES.includes(path) && !event.locals.user) redirect(307, `/auth/login?continue=${encodeURIComponent(path)}`);
  }
  return resolve(event);
};

export const handleError: HandleServerError = ({ error, status }) => {
  if (status !== 404) console.error('[lifeboat] unexpected error', error);
  return { message: status === 404 ? 'Not found' : 'Internal error, see the server log' };
};
