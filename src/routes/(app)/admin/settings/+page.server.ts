import { instance } from '$lib/server/instance';

export const load = async () => ({ config: await instance().systemConfig.get() });
