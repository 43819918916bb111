import { instance } from '$lib/server/instance';

export const load = async () => ({ backupHealth: await instance().jobs.backupHealth() });
