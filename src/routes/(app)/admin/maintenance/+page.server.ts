import { instance } from '$lib/server/instance';
import { APP_VERSION } from '$lib/server/version';

export const load = async ({ parent }) => {
  await parent();
  return { appVersion: APP_VERSION, uploadMaxBytes: instance().config.uploadMaxBytes };
};
