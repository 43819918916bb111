import { json } from '@sveltejs/kit';
import { instance } from '$lib/server/instance';

export const GET = () => json(instance().serverInfo.version());
