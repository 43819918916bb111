import type { Cookies } from '@sveltejs/kit';
import { SESSION_COOKIE } from '../services/auth.service';

export function setSessionCookie(cookies: Cookies, token: string, expires: Date, secure: boolean): void {
  cookies.set(SESSION_COOKIE, token, { path: '/', httpOnly: true, sameSite: 'lax', secure, expires });
}

export function clearSessionCookie(cookies: Cookies): void {
  cookies.delete(SESSION_COOKIE, { path: '/' });
}
