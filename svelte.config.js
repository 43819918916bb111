import adapter from '@sveltejs/adapter-node';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

// LIFEBOAT_BUILD_ID gives a build its own folders, so parallel checkouts/tests never overwrite each other's build.
const id = process.env.LIFEBOAT_BUILD_ID;

/** @type {import('@sveltejs/kit').Config} */
export default {
  preprocess: vitePreprocess(),
  kit: {
    adapter: adapter({ out: id ? `build-${id}` : 'build' }),
    outDir: id ? `.svelte-kit-${id}` : '.svelte-kit',
  },
};
