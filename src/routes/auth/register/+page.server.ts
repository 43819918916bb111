import { instance } from '$lib/server/instance';

/** On a reinstall over an old library, where to find the setup code (null on a new, empty install). */
export const load = async () => ({ setupCode: await instance().firstRun.prompt() });
