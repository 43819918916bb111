import { handle, jsonBody, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

export const GET = async ({ locals }) => {
  requireAdmin(locals);
  return handle(() => instance().jobs.getStatuses());
};

/** Starts a job and answers once it runs (201); 409 while a backup or restore already runs. */
export const POST = async (event) => {
  requireAdmin(event.locals);
  const body = await jsonBody(event);
  return handle(async () => {
    const { name, startedAt } = await instance().jobs.create(body.name);
    return { name, startedAt };
  }, 201);
};
