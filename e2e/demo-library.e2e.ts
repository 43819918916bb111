import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, signIn, test } from './fixtures';

const run = promisify(execFile);

test('npm run demo fills a running instance; the Photos page shows the thumbnails and the videos play', async ({ page, instance }) => {
  // The command line attaches to the server's embedded database, as an admin would run it beside the server.
  const { stdout } = await run(process.execPath, ['node_modules/tsx/dist/cli.mjs', 'src/cli/demo.ts', '--users', '1', '--assets', '60'], {
    env: { ...process.env, UPLOAD_LOCATION: instance.uploadLocation, DB_DATA_LOCATION: instance.dbDataLocation },
  });
  expect(stdout).toContain('Created the admin admin@example.com with the password "admin-password".');
  expect(stdout).toContain('The instance now has 60 assets (6 videos)');

  // The server saw the new admin: Welcome is over.
  await page.goto('/');
  await expect(page).toHaveURL(/\/auth\/login(\?continue=%2F)?$/);
  await signIn(page, { email: 'admin@example.com', password: 'admin-password' });
  await expect(page.getByTestId('asset-count')).toHaveText('30 items');
  const tiles = page.getByTestId('asset');
  await expect(tiles).toHaveCount(30);
  // Every thumbnail is a real image the browser decoded.
  await expect
    .poll(() => page.locator('[data-testid="asset"] img').evaluateAll((imgs) => imgs.filter((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth === 160).length))
    .toBe(30);
  await expect(tiles.getByRole('img', { name: 'Video', exact: true })).toHaveCount(3);
  await page.screenshot({ path: test.info().outputPath('photos.png'), fullPage: true });

  // A demo video from disk plays in Chromium and shows a picture.
  const { stdout: listing } = await run('find', [join(instance.uploadLocation, 'upload'), '-name', '*.mp4']);
  const mp4 = readFileSync(listing.trim().split('\n')[0]);
  await page.route('**/demo-video.mp4', (route) => route.fulfill({ body: mp4, contentType: 'video/mp4' }));
  const frame = await page.evaluate(async () => {
    const video = document.createElement('video');
    video.muted = true;
    video.src = '/demo-video.mp4';
    document.body.append(video);
    await video.play();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const context = canvas.getContext('2d')!;
    context.drawImage(video, 0, 0);
    const [r, g, b, a] = context.getImageData(8, 8, 1, 1).data;
    return { width: video.videoWidth, height: video.videoHeight, duration: video.duration, opaque: a === 255, lit: r + g + b > 30 };
  });
  expect(frame).toEqual({ width: 64, height: 48, duration: 4, opaque: true, lit: true });
});
