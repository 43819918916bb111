import { instance } from '$lib/server/instance';

// The scheduler reads cron expressions in the server's time zone; the page previews in it.
// The routine backups feed the retention preview ("these N files would be kept").
export const load = async ({ parent }) => {
  await parent();
  const backups = await instance().backups.listBackups().catch(() => []);
  return {
    config: await instance().systemConfig.getPublic(),
    serverTimeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    routine: backups.filter((file) => file.kind === 'routine').map((file) => ({ name: file.filename, createdAt: file.createdAt })),
  };
};
