import { instance } from '$lib/server/instance';
import { APP_VERSION } from '$lib/server/version';

export const load = () => ({ appVersion: APP_VERSION, uploadMaxBytes: instance().config.uploadMaxBytes });
