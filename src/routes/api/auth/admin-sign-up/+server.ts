import { handle, jsonBody } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** The first admin. When the backups folder already holds backups, with {"setupCode": "…"} too (401 without, 403 wrong). */
export const POST = async (event) => {
  const body = await jsonBody(event);
  return handle(async () => {
    const user = await instance().firstRun.signUpAdmin({ email: body.email, password: body.password, name: body.name }, body.setupCode);
    return { id: user.id, email: user.email, name: user.name, isAdmin: user.isAdmin };
  }, 201);
};
