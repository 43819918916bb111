import { handle, jsonBody, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

export const GET = async ({ locals }) => {
  requireAdmin(locals);
  return handle(() => instance().userService.list());
};

export const POST = async (event) => {
  requireAdmin(event.locals);
  const body = await jsonBody(event);
  return handle(() => instance().userService.create({ email: body.email, password: body.password, name: body.name }), 201);
};
