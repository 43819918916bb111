// `npm run bench:offsite`: an off-site copy of a 1 GiB backup through the real OffsiteService
// (read stream → SHA-256 on the way → AWS SDK multipart Upload → .sha256 beside it → the bucket's
// count), against a plain multipart upload of the same file with the same client, to an
// S3-compatible server (s3rver) in a child process over loopback. Best of OFFSITE_BENCH_ROUNDS
// (default 3) alternating rounds. The RSS growth is this process's (the one that copies, as the
// server does) from just before the copy to its peak, sampled every 20 ms.
// Ends with one JSON line: {"offsiteThroughputRatio":…, "rssGrowthMiB":…}.
// Options (environment): OFFSITE_BENCH_MB (default 1024), OFFSITE_BENCH_ROUNDS (default 3).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { PART_SIZE, QUEUE_SIZE } from '../src/lib/server/repositories/s3.repository';
import { StorageRepository } from '../src/lib/server/repositories/storage.repository';
import { FileUse } from '../src/lib/server/services/file-use';
import { OffsiteService } from '../src/lib/server/services/offsite.service';
import { routineBackupName } from '../src/lib/shared/backup-name';
import { DEFAULT_SYSTEM_CONFIG } from '../src/lib/shared/cron-schedule';
import type { SystemConfig } from '../src/lib/shared/types';

const root = new URL('..', import.meta.url).pathname;
const BYTES = Number(process.env.OFFSITE_BENCH_MB || 1024) * 1024 * 1024;
const ROUNDS = Number(process.env.OFFSITE_BENCH_ROUNDS || 3);
const RSS_TARGET_MB = 64;
const BUCKET = 'lifeboat-bench';
const mib = (bytes: number) => bytes / 1024 / 1024;

/** Random bytes: a gzip backup does not compress further, and neither does this. */
async function generate(path: string): Promise<void> {
  let left = BYTES;
  const source = new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const size = Math.min(left, 1024 * 1024);
      left -= size;
      this.push(randomBytes(size));
    },
  });
  await pipeline(source, createWriteStream(path));
}

/** s3rver in a child process, so its memory is not counted here. */
async function startS3(directory: string): Promise<{ endpoint: string; stop(): void }> {
  const code = `
    const S3rver = require('@20minutes/s3rver');
    const server = new S3rver({ port: 0, address: '127.0.0.1', directory: ${JSON.stringify(directory)}, silent: true, allowMismatchedSignatures: true, configureBuckets: [{ name: '${BUCKET}' }] });
    server.run().then((address) => console.log('PORT ' + address.port));
  `;
  const child = spawn(process.execPath, ['-e', code], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      const match = /PORT (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code})`)));
  });
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
}

/** Runs fn while sampling RSS; returns seconds and the peak growth over the RSS just before. */
async function measure(fn: () => Promise<void>): Promise<{ seconds: number; growthMiB: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage.rss();
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const started = process.hrtime.bigint();
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  peak = Math.max(peak, process.memoryUsage.rss());
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, growthMiB: mib(peak - before) };
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'lifeboat-offsite-bench-'));
  const backups = join(work, 'backups');
  const state = join(work, 'state');
  mkdirSync(backups);
  mkdirSync(state);
  const s3 = await startS3(join(work, 's3'));
  try {
    const name = routineBackupName(new Date(), '1.1.0', '15.18');
    const file = join(backups, name);
    console.log(`Generating ${mib(BYTES)} MiB …`);
    await generate(file);
    const size = statSync(file).size;

    const settings = { ...DEFAULT_SYSTEM_CONFIG.backup.offsite, enabled: true, endpoint: s3.endpoint, bucket: BUCKET, prefix: 'bench', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', keepLastAmount: 5 };
    const config: SystemConfig = { ...DEFAULT_SYSTEM_CONFIG, backup: { ...DEFAULT_SYSTEM_CONFIG.backup, offsite: settings } };
    const lines: string[] = [];
    const offsite = new OffsiteService({
      systemConfig: { get: async () => config } as never,
      backups: { backupsFolder: backups, listBackups: async () => [] } as never,
      storage: new StorageRepository(),
      fileUse: new FileUse(),
      stateDir: state,
      log: (line) => lines.push(line),
      logError: (line) => {
        throw new Error(line);
      },
    });
    offsite.retry = { attempts: 1, delayMs: 0 };
    // The same client settings as S3Repository's.
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: settings.region,
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const remove = (key: string) => client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));

    let bestPlain = Infinity;
    let bestOffsite = Infinity;
    let worstGrowth = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const plain = await measure(async () => {
        await new Upload({ client, params: { Bucket: BUCKET, Key: 'plain/file', Body: createReadStream(file) }, partSize: PART_SIZE, queueSize: QUEUE_SIZE }).done();
      });
      await remove('plain/file');
      const copy = await measure(async () => {
        await offsite.enqueue(name);
        await offsite.idle();
      });
      if (!lines.some((line) => line.startsWith(`Off-site copy of ${name} done`))) throw new Error(`The off-site copy did not finish: ${lines.join('\n')}`);
      lines.length = 0;
      await remove(`bench/${name}`);
      await remove(`bench/${name}.sha256`);
      bestPlain = Math.min(bestPlain, plain.seconds);
      bestOffsite = Math.min(bestOffsite, copy.seconds);
      worstGrowth = Math.max(worstGrowth, copy.growthMiB);
      console.log(
        `round ${round}: plain upload ${(mib(size) / plain.seconds).toFixed(0)} MiB/s (RSS +${plain.growthMiB.toFixed(1)} MiB), ` +
          `off-site copy ${(mib(size) / copy.seconds).toFixed(0)} MiB/s (RSS +${copy.growthMiB.toFixed(1)} MiB)`,
      );
    }
    client.destroy();
    await offsite.stop();
    const ratio = bestPlain / bestOffsite;
    console.log(`Best of ${ROUNDS}: off-site copy at ${(ratio * 100).toFixed(0)}% of a plain upload's throughput; RSS growth at most ${worstGrowth.toFixed(1)} MiB (target < ${RSS_TARGET_MB} MB)`);
    console.log(JSON.stringify({ offsiteThroughputRatio: Number(ratio.toFixed(3)), rssGrowthMiB: Number(worstGrowth.toFixed(1)) }));
  } finally {
    s3.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
