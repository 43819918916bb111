import { instance } from '$lib/server/instance';

// parent() first: the admin check of the layout must pass before any data is read.
export const load = async ({ parent }) => {
  await parent();
  const [backupHealth, alerts] = await Promise.all([instance().jobs.backupHealth(), instance().notifications.status()]);
  // Alert channels whose last delivery failed: shown here, where the admin looks.
  const failingAlerts = Object.values(alerts.channels).filter((delivery) => delivery && !delivery.ok);
  return { backupHealth, failingAlerts };
};
