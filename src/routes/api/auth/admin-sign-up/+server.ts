import { handle, jsonBody } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

export const POST = async (event) => {
  const body = await jsonBody(event);
  return handle(async () => {
    const user = await instance().auth.adminSignUp({ email: body.email, password: body.password, name: body.name });
    return { id: user.id, email: user.email, name: user.name, isAdmin: user.isAdmin };
  }, 201);
};
