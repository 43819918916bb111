import { instance } from '$lib/server/instance';

export const load = async ({ parent }) => {
  await parent();
  const [config, status] = await Promise.all([instance().systemConfig.getPublic(), instance().notifications.status()]);
  return { notifications: config.notifications, status };
};
