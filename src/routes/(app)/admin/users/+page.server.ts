import { instance } from '$lib/server/instance';

// parent() first: the admin check of the layout must pass before any data is read.
export const load = async ({ parent }) => {
  await parent();
  return { users: await instance().userService.list() };
};
