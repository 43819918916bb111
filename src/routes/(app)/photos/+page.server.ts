import { instance } from '$lib/server/instance';

const PAGE_SIZE = 200;

export const load = async ({ locals, url }) => {
  const user = locals.user!;
  const page = Math.max(0, Number(url.searchParams.get('page')) || 0);
  const app = instance();
  const [count, assets] = await Promise.all([app.assets.countByOwner(user.id), app.assets.listByOwner(user.id, PAGE_SIZE, page * PAGE_SIZE)]);
  return {
    count,
    page,
    pageSize: PAGE_SIZE,
    assets: assets.map((a) => ({ id: a.id, type: a.type, name: a.original_file_name, createdAt: a.file_created_at.toISOString(), hasThumbnail: !!a.thumbnail_path })),
  };
};
