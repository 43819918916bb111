import { json } from '@sveltejs/kit';
import { instance } from '$lib/server/instance';

export const GET = async () => json(await instance().serverInfo.config());
