import { instance } from '$lib/server/instance';

export const load = async ({ parent }) => {
  await parent();
  return { offsite: (await instance().systemConfig.getPublic()).backup.offsite };
};
