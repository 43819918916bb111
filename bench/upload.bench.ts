// `npm run bench:upload`: streams a 1 GiB .sql.gz through the real upload route of the built
// server (multer → gzip check on the way → disk → header check → rename) over loopback, and prints its throughput against a
// plain "request body → file" server (its own process) measured in the same run, and the server's RSS growth.
// Best of UPLOAD_BENCH_ROUNDS (default 3) alternating rounds; the throughput counts until the 201 answer,
// so the checks that finish after the last byte (gzip tail, header, fsync, rename) are in it.
// Ends with one JSON line: {"uploadThroughputRatio":…, "rssGrowthMiB":…}.
// Options (environment): UPLOAD_BENCH_MB (default 1024), UPLOAD_BENCH_ROUNDS (default 3), UPLOAD_BENCH_FILE,
// UPLOAD_BENCH_PROFILE=<folder> (the server writes V8 CPU profiles there when it stops).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

const root = new URL('..', import.meta.url).pathname;
const TARGET_BYTES = Number(process.env.UPLOAD_BENCH_MB || 1024) * 1024 * 1024;
const RSS_TARGET_MB = 64;
const ROUNDS = Number(process.env.UPLOAD_BENCH_ROUNDS || 3);
const mb = (bytes: number) => bytes / 1024 / 1024;

const HEADER = `--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE public.bench (id bigint NOT NULL, payload text);

COPY public.bench (id, payload) FROM stdin;
`;

/** A valid gzip of a dump header and COPY rows of random text, until the compressed file reaches the target size. */
async function generateDump(path: string): Promise<number> {
  const out = createWriteStream(path);
  const gzip = createGzip({ level: 1 });
  let id = 0;
  const rows = new Readable({
    read() {
      // base64 compresses to about 3/4: the file grows steadily and stays realistic-ish.
      if (out.bytesWritten >= TARGET_BYTES) {
        this.push('\\.\n');
        this.push(null);
        return;
      }
      if (id === 0) this.push(HEADER);
      let chunk = '';
      for (let i = 0; i < 256; i++) chunk += `${++id}\t${randomBytes(768).toString('base64')}\n`;
      this.push(chunk);
    },
  });
  await pipeline(rows, gzip, out);
  return statSync(path).size;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function rssOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

interface UploadResult {
  status: number;
  body: string;
  /** Until the last byte of the body was handed to the socket. */
  transferMs: number;
  /** Until the answer arrived (includes the server's checks, fsync and rename). */
  totalMs: number;
}

/** Streams the file as multipart/form-data with http.request, never reading it into memory. */
function upload(url: string, file: string, headers: Record<string, string> = {}, name = 'bench.sql.gz'): Promise<UploadResult> {
  const boundary = `lifeboat-bench-${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${name}"\r\ncontent-type: application/gzip\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const size = statSync(file).size;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let transferMs = 0;
    const request = http.request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + size + tail.length) },
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body, transferMs, totalMs: performance.now() - started }));
      },
    );
    request.on('error', reject);
    request.on('finish', () => (transferMs = performance.now() - started));
    request.write(head);
    const source = createReadStream(file, { highWaterMark: 1024 * 1024 });
    source.on('error', reject);
    source.pipe(request, { end: false });
    source.on('end', () => request.end(tail));
  });
}

// The baseline server: the same request body piped straight into a file, no checks, in its own
// node process like the app's (the client, in this process, does not share its event loop).
const BASELINE_SERVER = `
const http = require('node:http');
const { createWriteStream, rmSync } = require('node:fs');
const { pipeline } = require('node:stream/promises');
const path = require('node:path').join(process.env.BASELINE_DIR, 'baseline.bin');
const server = http.createServer((req, res) => {
  pipeline(req, createWriteStream(path)).then(
    () => { rmSync(path, { force: true }); res.writeHead(201).end('{}'); },
    () => res.writeHead(500).end(),
  );
});
server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));
`;

async function startBaseline(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['-e', BASELINE_SERVER], { env: { ...process.env, BASELINE_DIR: dir }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`the baseline server exited (${code})`)));
  });
  return { child, url: `http://127.0.0.1:${port}/` };
}

/** CPU seconds a process used itself, and its children that ended (igzip, wc), from /proc. */
function cpuOf(pid: number): { own: number; children: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = (i: number) => Number(fields[i]) / 100;
  return { own: ticks(11) + ticks(12), children: ticks(13) + ticks(14) };
}

async function startServer(uploadLocation: string, dbDataLocation: string): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [...(process.env.UPLOAD_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.UPLOAD_BENCH_PROFILE}`] : []), 'server.js'], {
    cwd: root,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', UPLOAD_LOCATION: uploadLocation, DB_DATA_LOCATION: dbDataLocation },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}):\n${output}`);
    if (await fetch(`${url}/api/server/version`).then((r) => r.ok, () => false)) return { child, url, output: () => output };
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server did not start:\n${output}`);
}

async function main() {
  const buildId = process.env.LIFEBOAT_BUILD_ID;
  const handler = join(root, buildId ? `build-${buildId}` : 'build', 'handler.js');
  if (!existsSync(handler)) {
    console.log('Building the app first…');
    const built = spawnSync(process.execPath, [join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build'], { cwd: root, stdio: 'inherit' });
    if (built.status !== 0) process.exit(built.status ?? 1);
  }

  const work = mkdtempSync(join(tmpdir(), 'lifeboat-upload-bench-'));
  chmodSync(work, 0o755);
  const uploadLocation = join(work, 'library');
  mkdirSync(uploadLocation);
  let server: Awaited<ReturnType<typeof startServer>> | null = null;
  let stopBaseline = () => {};
  try {
    // UPLOAD_BENCH_FILE keeps the generated file between runs (it is made there when missing).
    const file = process.env.UPLOAD_BENCH_FILE || join(work, 'bench.sql.gz');
    let size: number;
    if (existsSync(file)) {
      size = statSync(file).size;
      console.log(`Using ${file} (${mb(size).toFixed(0)} MiB)`);
    } else {
      console.log(`Generating a ${mb(TARGET_BYTES).toFixed(0)} MiB .sql.gz (dump header + random COPY rows)…`);
      const t0 = performance.now();
      size = await generateDump(file);
      console.log(`  ${mb(size).toFixed(0)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }

    server = await startServer(uploadLocation, join(work, 'postgres'));
    const signUp = { email: 'bench@example.com', password: 'bench-password', name: 'Bench' };
    await fetch(`${server.url}/api/auth/admin-sign-up`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(signUp) });
    const login = await fetch(`${server.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(signUp) });
    const { accessToken } = (await login.json()) as { accessToken: string };
    const pid = server.child.pid!;

    const base = await startBaseline(work);
    stopBaseline = () => base.child.kill('SIGTERM');
    // The same warm-up for both servers (a first request of 64 MiB, untimed), then alternating
    // rounds, best of each: the 2 cores are shared, so both sides meet the same noise.
    const warmFile = join(work, 'warm-up.sql.gz');
    await pipeline(createReadStream(file, { end: 64 * 1024 * 1024 - 1 }), createWriteStream(warmFile));
    await upload(base.url, warmFile);
    // Cut short, it is no valid gzip: the app refuses it after reading it all.
    await upload(`${server.url}/api/admin/database-backups/upload`, warmFile, { authorization: `Bearer ${accessToken}` }, 'warm-up.sql.gz');
    const bases: UploadResult[] = [];
    const apps: UploadResult[] = [];
    let growth = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const baseResult = await upload(base.url, file);
      if (baseResult.status !== 201) throw new Error(`the baseline answered ${baseResult.status}`);
      bases.push(baseResult);
      const before = rssOf(pid);
      const cpuBefore = cpuOf(pid);
      let peak = before.rss;
      const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid).rss)), 20);
      const name = `bench-${round}.sql.gz`;
      const result = await upload(`${server.url}/api/admin/database-backups/upload`, file, { authorization: `Bearer ${accessToken}` }, name);
      clearInterval(sampler);
      peak = Math.max(peak, rssOf(pid).rss);
      const cpu = cpuOf(pid);
      if (result.status !== 201) throw new Error(`upload answered ${result.status}: ${result.body}`);
      const stored = join(uploadLocation, 'backups', `uploaded-${name}`);
      if (statSync(stored).size !== size) throw new Error('the stored file does not have the uploaded size');
      rmSync(stored);
      apps.push(result);
      growth = Math.max(growth, mb(peak - before.rss));
      const rate = (ms: number) => `${(mb(size) / (ms / 1000)).toFixed(0)} MB/s`;
      const cpuText = `server CPU ${(cpu.own - cpuBefore.own).toFixed(2)} s, its children's ${(cpu.children - cpuBefore.children).toFixed(2)} s`;
      console.log(`  round ${round}: baseline ${rate(baseResult.totalMs)}; upload route ${rate(result.totalMs)} until the 201 answer (transfer ${rate(result.transferMs)}), RSS +${mb(peak - before.rss).toFixed(1)} MB, ${cpuText}`);
    }

    const best = (results: UploadResult[], key: 'transferMs' | 'totalMs') => Math.min(...results.map((r) => r[key]));
    const baseMs = best(bases, 'totalMs');
    const appMs = best(apps, 'totalMs');
    const transferMs = best(apps, 'transferMs');
    const ratio = baseMs / appMs;
    console.log(`\nBest of ${ROUNDS} (${mb(size).toFixed(0)} MiB .sql.gz over loopback):`);
    console.log(`  baseline (request body piped into a file, no checks, its own process): ${(mb(size) / (baseMs / 1000)).toFixed(0)} MB/s`);
    console.log(`  upload route (multer, whole gzip checked beside the transfer, dump header, fsync, rename), until the 201 answer: ${(mb(size) / (appMs / 1000)).toFixed(0)} MB/s, ratio ${ratio.toFixed(2)} (target ≥ 0.50) ${ratio >= 0.5 ? 'OK' : 'MISSED'}`);
    console.log(`  the same, until the last byte was sent (before the answer): ratio ${(baseMs / transferMs).toFixed(2)}`);
    console.log(`  server RSS growth, largest of the rounds: ${growth.toFixed(1)} MB (target ≤ ${RSS_TARGET_MB} MB) ${growth <= RSS_TARGET_MB ? 'OK' : 'OVER TARGET'}`);
    console.log(JSON.stringify({ uploadThroughputRatio: Number(ratio.toFixed(3)), rssGrowthMiB: Number(growth.toFixed(1)) }));
  } finally {
    stopBaseline();
    if (server && server.child.exitCode === null) {
      const exited = new Promise((resolve) => server!.child.once('exit', resolve));
      server.child.kill('SIGTERM');
      await exited;
    }
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
