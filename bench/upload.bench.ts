// `npm run bench:upload`: streams a 1 GiB .sql.gz through the real upload route of the built
// server (multer → gzip check on the way → disk → header check → rename) over loopback, and prints its throughput against a
// plain "request body → file" server measured in the same run, and the server's RSS growth.
// Options (environment): UPLOAD_BENCH_MB (default 1024).
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
function upload(url: string, file: string, headers: Record<string, string> = {}): Promise<UploadResult> {
  const boundary = `lifeboat-bench-${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="bench.sql.gz"\r\ncontent-type: application/gzip\r\n\r\n`);
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

/** The baseline: the same request body piped straight into a file, in this process. */
async function baseline(file: string, dir: string): Promise<UploadResult> {
  const server = http.createServer((req, res) => {
    const out = createWriteStream(join(dir, 'baseline.bin'));
    pipeline(req, out).then(
      () => res.writeHead(201).end('{}'),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await upload(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, file);
  } finally {
    server.close();
    rmSync(join(dir, 'baseline.bin'), { force: true });
  }
}

async function startServer(uploadLocation: string, dbDataLocation: string): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['server.js'], {
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
  try {
    const file = join(work, 'bench.sql.gz');
    console.log(`Generating a ${mb(TARGET_BYTES).toFixed(0)} MiB .sql.gz (dump header + random COPY rows)…`);
    const t0 = performance.now();
    const size = await generateDump(file);
    console.log(`  ${mb(size).toFixed(0)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const base = await baseline(file, work);
    console.log(`Baseline (request body piped into a file, same process): ${(mb(size) / (base.transferMs / 1000)).toFixed(0)} MB/s`);

    server = await startServer(uploadLocation, join(work, 'postgres'));
    const signUp = { email: 'bench@example.com', password: 'bench-password', name: 'Bench' };
    await fetch(`${server.url}/api/auth/admin-sign-up`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(signUp) });
    const login = await fetch(`${server.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(signUp) });
    const { accessToken } = (await login.json()) as { accessToken: string };

    const pid = server.child.pid!;
    const before = rssOf(pid);
    let peak = before.rss;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid).rss)), 50);
    const result = await upload(`${server.url}/api/admin/database-backups/upload`, file, { authorization: `Bearer ${accessToken}` });
    clearInterval(sampler);
    const after = rssOf(pid);
    peak = Math.max(peak, after.rss);
    if (result.status !== 201) throw new Error(`upload answered ${result.status}: ${result.body}`);
    const stored = join(uploadLocation, 'backups', 'uploaded-bench.sql.gz');
    if (statSync(stored).size !== size) throw new Error('the stored file does not have the uploaded size');

    const transfer = mb(size) / (result.transferMs / 1000);
    const total = mb(size) / (result.totalMs / 1000);
    const growth = mb(peak - before.rss);
    console.log(`Upload route (multer disk storage, the whole gzip decompressed on the way in, dump header check, fsync, rename):`);
    console.log(`  transfer: ${transfer.toFixed(0)} MB/s (${(result.transferMs / 1000).toFixed(1)} s), ratio to baseline ${(transfer / (mb(size) / (base.transferMs / 1000))).toFixed(2)}`);
    console.log(`  until the 201 answer: ${total.toFixed(0)} MB/s (${(result.totalMs / 1000).toFixed(1)} s; checks and fsync ${((result.totalMs - result.transferMs) / 1000).toFixed(1)} s)`);
    console.log(`Server RSS: ${mb(before.rss).toFixed(0)} MB before, ${mb(peak).toFixed(0)} MB at peak (VmHWM ${mb(after.hwm).toFixed(0)} MB): growth ${growth.toFixed(1)} MB (target ≤ ${RSS_TARGET_MB} MB) ${growth <= RSS_TARGET_MB ? 'OK' : 'OVER TARGET'}`);
  } finally {
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
