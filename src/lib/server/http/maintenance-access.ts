import type { Cookies } from '@sveltejs/kit';
import type { MaintenanceService } from '../services/maintenance.service';
import { MAINTENANCE_COOKIE } from '../services/maintenance.service';

/** The browser that started (or joined) maintenance keeps acting while the sessions table is replaced. */
export function setMaintenanceCookie(cookies: Cookies, token: string, secure: boolean): void {
  cookies.set(MAINTENANCE_COOKIE, token, { path: '/', httpOnly: true, sameSite: 'lax', secure });
}

/**
 * Who may read the error and the log: the maintenance admin, an admin session, or the
 * holder of a token of the maintenance period that just ended (the page that watched a
 * restore finish). Everyone else sees progress only.
 */
export function canSeeMaintenanceDetails(locals: App.Locals, cookies: Cookies, maintenance: MaintenanceService): boolean {
  return locals.maintenanceAdmin || Boolean(locals.user?.isAdmin) || maintenance.ownsToken(cookies.get(MAINTENANCE_COOKIE));
}
