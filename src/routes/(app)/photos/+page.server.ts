import { instance } from '$lib/server/instance';

const PAGE_SIZE = 200;

export const load = async ({ locals, url }) => {
  const page = Math.max(0, Math.floor(Number(url.searchParams.get('page'))) || 0);
  const { count, assets } = await instance().assetService.timeline(locals.user!.id, page, PAGE_SIZE);
  return { count, page, pageSize: PAGE_SIZE, assets };
};
