import { instance } from '$lib/server/instance';

export const load = async () => ({ queues: await instance().jobs.getStatuses() });
