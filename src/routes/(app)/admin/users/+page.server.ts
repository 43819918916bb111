import { instance } from '$lib/server/instance';

export const load = async () => ({ users: await instance().userService.list() });
