import { instance } from '$lib/server/instance';

// The scheduler reads cron expressions in the server's time zone; the page previews in it.
export const load = async ({ parent }) => {
  await parent();
  return { config: await instance().systemConfig.getPublic(), serverTimeZone: Intl.DateTimeFormat().resolvedOptions().timeZone };
};
