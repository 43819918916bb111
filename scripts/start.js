// `npm start`: builds the app when the build is missing or older than the sources, then runs server.js.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function newest(path) {
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  let max = info.mtimeMs;
  for (const entry of readdirSync(path)) max = Math.max(max, newest(join(path, entry)));
  return max;
}

const id = process.env.LIFEBOAT_BUILD_ID;
const built = join(root, id ? `build-${id}` : 'build', 'handler.js');
const sources = ['src', 'static', 'package.json', 'svelte.config.js', 'vite.config.ts'].map((p) => join(root, p)).filter(existsSync);
const stale = !existsSync(built) || Math.max(...sources.map(newest)) > statSync(built).mtimeMs;
if (stale) {
  console.log('[lifeboat] Building the app (first start or sources changed)…');
  const result = spawnSync(process.execPath, [join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
// Same process, so SIGTERM reaches server.js's graceful shutdown directly.
await import(join(root, 'server.js'));
