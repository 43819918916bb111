import { error, json, type RequestEvent } from '@sveltejs/kit';
import { ServiceError } from '../errors';
import { adminRefusal } from './access';

/** Admin APIs: 401 for anonymous, 403 for non-admins. The maintenance admin passes while maintenance runs. */
export function requireAdmin(locals: App.Locals): void {
  const refusal = adminRefusal(locals);
  if (refusal) error(refusal.status, refusal.message);
}

export function requireUser(locals: App.Locals) {
  if (!locals.user) error(401, 'Authentication required');
  return locals.user;
}

/** Reads a JSON body; a malformed one is the client's error, not ours. `optional`: no body reads as {}. */
export async function jsonBody(event: RequestEvent, options: { optional?: boolean } = {}): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    const text = await event.request.text();
    if (options.optional && !text.trim()) return {};
    body = JSON.parse(text);
  } catch {
    error(400, 'The request body must be JSON');
  }
  // A string, number or array would otherwise read as an object with no fields.
  if (!body || typeof body !== 'object' || Array.isArray(body)) error(400, 'The request body must be a JSON object');
  return body as Record<string, unknown>;
}

/** Runs a service call and maps its expected errors to HTTP answers. */
export async function handle<T>(fn: () => Promise<T> | T, status = 200): Promise<Response> {
  try {
    const result = await fn();
    return result instanceof Response ? result : json(result ?? null, { status });
  } catch (caught) {
    if (caught instanceof ServiceError) return json({ message: caught.message }, { status: caught.status });
    throw caught;
  }
}
