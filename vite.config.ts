import { sveltekit } from '@sveltejs/kit/vite';
import tailwindcss from '@tailwindcss/vite';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  plugins: [tailwindcss(), sveltekit()],
  test: {
    include: ['src/**/*.test.ts', 'tests/**/*.test.ts'],
    globalSetup: ['tests/global-setup.ts'],
    // Generous: a test may start a cluster, run pg_dump and psql, on a shared 2-core machine.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Integration tests share one PostgreSQL cluster; each file makes its own databases.
    fileParallelism: false,
  },
});
