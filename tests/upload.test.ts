import { createHash } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadServiceFor } from '../src/lib/server/http/upload-route';
import { backupFiles, DUMP, eventually, postUpload, startUploadServer, uploadForm, type UploadServer } from './helpers/upload-server';

/** ~18 MiB of gzip: a dump header, then rows of random text (level 1, as a fast backup writes). */
let large: Buffer | undefined;
function largeDump(): Buffer {
  if (!large) {
    const rows = randomBytes(18_000_000).toString('base64');
    const lines: string[] = [];
    for (let i = 0; i < rows.length; i += 1000) lines.push(`2\t${rows.slice(i, i + 1000)}\n`);
    large = gzipSync(`${DUMP.replace('\\.\n', '')}${lines.join('')}\\.\n`, { level: 1 });
  }
  return Buffer.from(large);
}

const form = uploadForm;
const post = postUpload;

describe('POST /api/admin/database-backups/upload', () => {
  let server: UploadServer;
  beforeAll(async () => {
    server = await startUploadServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('stores a good .sql.gz as uploaded-<name>, byte for byte, and answers with the backup', async () => {
    const gz = gzipSync(DUMP);
    const { status, body } = await post(server, form('immich-db-backup-20250101T000000-v1.0.0-pg15.sql.gz', gz));
    expect(status).toBe(201);
    expect(body).toMatchObject({ filename: 'uploaded-immich-db-backup-20250101T000000-v1.0.0-pg15.sql.gz', kind: 'uploaded', filesize: gz.length, version: '1.0.0' });
    const stored = join(server.instance.uploadLocation, 'backups', body.filename!);
    expect(readFileSync(stored).equals(gz)).toBe(true);
  });

  it('records the manifest while the file arrives (SHA-256), then its verification counts the rows with zlib', async () => {
    const { app } = server.instance;
    const { filename } = await app.backups.createBackup();
    // Its own rows are counted by its verification (igzip compressed it outside the process).
    await app.verification.verify(filename);
    const bytes = readFileSync(join(app.backups.backupsFolder, filename));
    const { status, body } = await post(server, form('arrived.sql.gz', bytes));
    expect(status).toBe(201);
    const manifest = await app.backups.manifests.read(body.filename!);
    expect(manifest).toMatchObject({ source: 'upload', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    const verified = await app.verification.verify(body.filename!);
    expect(verified).toMatchObject({ status: 'verified', sha256: manifest!.sha256 });
    const counted = await app.backups.manifests.read(body.filename!);
    expect(counted!.rowsPending).not.toBe(true);
    expect(counted!.tables).toEqual((await app.backups.manifests.read(filename))!.tables);
    expect(Object.keys(counted!.tables)).toContain('public.users');
    await app.backups.deleteBackups([filename, body.filename!]);
  });

  it('stores a large .sql.gz of several members byte for byte (checked while it streamed in)', async () => {
    const gz = Buffer.concat([largeDump(), gzipSync('-- the end\n')]);
    const { status, body } = await post(server, form('large.sql.gz', gz));
    expect(status).toBe(201);
    expect(body.filesize).toBe(gz.length);
    const stored = join(server.instance.uploadLocation, 'backups', 'uploaded-large.sql.gz');
    expect(readFileSync(stored).equals(gz)).toBe(true);
    rmSync(stored);
  });

  it('a gzip whose bytes after its end end in a forged trailer passes the fast check, but its verification (zlib, as the restore reads) finds it corrupted and a restore is refused', async () => {
    const { app } = server.instance;
    // Large: the dump-header check reads only the head, not the end.
    const member = largeDump();
    // igzip ignores what follows the member; the last 8 bytes repeat the member's CRC-32 and length.
    const gz = Buffer.concat([member, Buffer.from('junk'), member.subarray(-8)]);
    const { status, body } = await post(server, form('forged.sql.gz', gz));
    expect(status).toBe(201);
    const verification = await app.verification.verify(body.filename!);
    expect(verification.status).toBe('corrupted');
    expect(verification.error).toMatch(/gzip data is damaged/);
    // Its manifest never got rows from it, and the restore refuses it before anything changes.
    expect((await app.backups.manifests.read(body.filename!))!.tables).toEqual({});
    await expect(app.restore.startRestore(body.filename!, { by: 'test' })).rejects.toThrow(/cannot be restored: verification found it corrupted/);
    expect(app.maintenance.isActive()).toBe(false);
    await app.backups.deleteBackups([body.filename!]);
  });

  it('stores a good plain .sql, and keeps only the base name of a path', async () => {
    const { status, body } = await post(server, form('C:\\Users\\ada\\dump.sql', DUMP));
    expect(status).toBe(201);
    expect(body.filename).toBe('uploaded-dump.sql');
    expect(readFileSync(join(server.instance.uploadLocation, 'backups', 'uploaded-dump.sql'), 'utf8')).toBe(DUMP);
  });

  it('keeps only the base name of a path-like name', async () => {
    const { status, body } = await post(server, form('../../etc/evil.sql.gz', gzipSync(DUMP)));
    expect(status).toBe(201);
    expect(body.filename).toBe('uploaded-evil.sql.gz');
    expect(existsSync(join(server.instance.uploadLocation, 'etc'))).toBe(false);
  });

  it('never overwrites: the same name twice is 409 and the first file stays intact', async () => {
    const first = gzipSync(DUMP);
    expect((await post(server, form('twice.sql.gz', first))).status).toBe(201);
    const before = backupFiles(server);
    const second = gzipSync(DUMP + '-- a different file\n');
    const { status, body } = await post(server, form('twice.sql.gz', second));
    expect(status).toBe(409);
    expect(body.message).toMatch(/already exists/);
    expect(readFileSync(join(server.instance.uploadLocation, 'backups', 'uploaded-twice.sql.gz')).equals(first)).toBe(true);
    expect(backupFiles(server)).toEqual(before);
  });

  it('never overwrites even when the name appears while the file was streaming in', async () => {
    // The name is checked before the body is read, and again, atomically, when the file is moved.
    const service = uploadServiceFor(server.instance.app);
    const backups = join(server.instance.uploadLocation, 'backups');
    writeFileSync(join(backups, 'uploaded-race.sql'), 'the first file');
    const temp = service.tempPath();
    writeFileSync(temp, DUMP);
    await expect(service.accept(temp, 'race.sql')).rejects.toMatchObject({ status: 409 });
    expect(readFileSync(join(backups, 'uploaded-race.sql'), 'utf8')).toBe('the first file');
    expect(existsSync(temp)).toBe(false);
  });

  it('in maintenance mode, the maintenance admin uploads with the maintenance cookie (the wizard\'s step 2)', async () => {
    const { app } = server.instance;
    const token = await app.maintenance.start('start', 'the test');
    try {
      const { status, body } = await post(server, form('wizard.sql.gz', gzipSync(DUMP)), { authorization: '', cookie: `immich_maintenance_token=${encodeURIComponent(token)}` });
      expect(status).toBe(201);
      expect(body.filename).toBe('uploaded-wizard.sql.gz');
      const stranger = await post(server, form('stranger.sql.gz', gzipSync(DUMP)), { authorization: '', cookie: 'immich_maintenance_token=not-the-token' });
      expect(stranger.status).toBe(401);
    } finally {
      await app.maintenance.end();
    }
  });

  it('a truncated gzip handed over without a check on the way in is read again and refused', async () => {
    const service = uploadServiceFor(server.instance.app);
    const whole = gzipSync(DUMP + randomBytes(500_000).toString('hex'));
    const temp = service.tempPath();
    writeFileSync(temp, whole.subarray(0, Math.floor(whole.length / 2)));
    await expect(service.accept(temp, 'cut.sql.gz')).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/not a valid gzip/) });
    expect(existsSync(temp)).toBe(false);
    expect(existsSync(join(server.instance.uploadLocation, 'backups', 'uploaded-cut.sql.gz'))).toBe(false);
  });

  describe('refusals leave no file', () => {
    let before: string[];
    beforeAll(() => {
      before = backupFiles(server);
    });

    it.each([
      ['a name with spaces', 'my dump.sql.gz'],
      ['the wrong extension', 'dump.tar.gz'],
      ['a hidden name', '.sql.gz'],
      ['a name with a quote', 'x".sql.gz'],
    ])('bad name: %s → 400', async (_what, name) => {
      const { status, body } = await post(server, form(name, gzipSync(DUMP)));
      expect(status).toBe(400);
      expect(body.message).toMatch(/Invalid file name/);
      expect(backupFiles(server)).toEqual(before);
    });

    it('a .gz that is not gzip → 400', async () => {
      const { status, body } = await post(server, form('broken.sql.gz', DUMP));
      expect(status).toBe(400);
      expect(body.message).toMatch(/not a valid gzip/);
      expect(backupFiles(server)).toEqual(before);
    });

    it('a gzip truncated in transit → 400', async () => {
      // Long enough that its first 64 KiB decompress fine: only reading to the end finds the cut.
      const whole = gzipSync(DUMP + randomBytes(500_000).toString('hex'));
      const { status, body } = await post(server, form('truncated.sql.gz', whole.subarray(0, Math.floor(whole.length / 2))));
      expect(status).toBe(400);
      expect(body.message).toMatch(/not a valid gzip|corrupted|truncated/);
      expect(backupFiles(server)).toEqual(before);
    });

    it('a large gzip with one byte flipped deep inside → 400, found by the check that runs beside the transfer', async () => {
      // Larger than the check's queue (16 slices of 1 MiB), so the transfer had to wait for it at times.
      const gz = largeDump();
      gz[Math.floor(gz.length * 0.9)] ^= 0xff;
      const { status, body } = await post(server, form('flipped.sql.gz', gz));
      expect(status).toBe(400);
      expect(body.message).toMatch(/not a valid gzip/);
      expect(backupFiles(server)).toEqual(before);
    });

    it('a gzip with bytes after its end that are not another member → 400', async () => {
      const gz = Buffer.concat([gzipSync(DUMP), gzipSync(DUMP).subarray(0, 30)]);
      const { status } = await post(server, form('tail.sql.gz', gz));
      expect(status).toBe(400);
      expect(backupFiles(server)).toEqual(before);
    });

    it('a gzip followed by bytes that are no member at all → 400 (igzip stops there quietly; zlib, which decides then, does not)', async () => {
      const gz = Buffer.concat([gzipSync(DUMP), Buffer.from('this is not gzip')]);
      const { status, body } = await post(server, form('garbage.sql.gz', gz));
      expect(status).toBe(400);
      expect(body.message).toMatch(/not a valid gzip/);
      expect(backupFiles(server)).toEqual(before);
    });

    it('a name that already exists → 409, and the existing file stays as it was', async () => {
      const existing = join(server.instance.uploadLocation, 'backups', 'uploaded-taken.sql.gz');
      writeFileSync(existing, 'not touched');
      try {
        const { status } = await post(server, form('taken.sql.gz', gzipSync(DUMP)));
        expect(status).toBe(409);
        expect(readFileSync(existing, 'utf8')).toBe('not touched');
        expect(backupFiles(server).filter((name) => name !== 'uploaded-taken.sql.gz')).toEqual(before);
      } finally {
        rmSync(existing);
      }
    });

    it('a gzip that is not a dump → 400', async () => {
      const { status, body } = await post(server, form('photo.sql.gz', gzipSync(randomBytes(4096))));
      expect(status).toBe(400);
      expect(body.message).toMatch(/does not look like a PostgreSQL dump/);
      expect(backupFiles(server)).toEqual(before);
    });

    it('a .sql that is not a dump → 400', async () => {
      const { status, body } = await post(server, form('notes.sql', 'DROP TABLE users;\n'));
      expect(status).toBe(400);
      expect(body.message).toMatch(/does not look like a PostgreSQL dump/);
      expect(backupFiles(server)).toEqual(before);
    });

    it('a gzip named .sql → 400', async () => {
      const { status, body } = await post(server, form('packed.sql', gzipSync(DUMP)));
      expect(status).toBe(400);
      expect(body.message).toMatch(/must end in \.sql\.gz/);
      expect(backupFiles(server)).toEqual(before);
    });

    it('a file in another field, or no file → 400', async () => {
      expect((await post(server, form('dump.sql.gz', gzipSync(DUMP), 'backup'))).status).toBe(400);
      const empty = new FormData();
      empty.append('note', 'no file here');
      const { status, body } = await post(server, empty);
      expect(status).toBe(400);
      expect(body.message).toMatch(/No file/);
      expect(backupFiles(server)).toEqual(before);
    });

    it('anonymous → 401, non-admin → 403, cross-site → 403', async () => {
      const anonymous = await fetch(server.url, { method: 'POST', body: form('anon.sql.gz', gzipSync(DUMP)) });
      expect(anonymous.status).toBe(401);
      expect((await post(server, form('user.sql.gz', gzipSync(DUMP)), { authorization: `Bearer ${server.user}` })).status).toBe(403);
      // A session cookie works like a bearer token, but not from another site.
      const crossSite = await fetch(server.url, {
        method: 'POST',
        body: form('csrf.sql.gz', gzipSync(DUMP)),
        headers: { cookie: `immich_access_token=${server.admin}`, origin: 'https://evil.example' },
      });
      expect(crossSite.status).toBe(403);
      expect(backupFiles(server)).toEqual(before);
    });

    it('an upload aborted halfway leaves no file', async () => {
      const url = new URL(server.url);
      const boundary = 'lifeboat-test-boundary';
      const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="aborted.sql.gz"\r\ncontent-type: application/gzip\r\n\r\n`);
      const payload = gzipSync(DUMP + randomBytes(2_000_000).toString('hex'));
      const request = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: {
          authorization: `Bearer ${server.admin}`,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': head.length + payload.length + 100,
        },
      });
      request.on('error', () => undefined);
      request.write(head);
      request.write(payload.subarray(0, payload.length / 2));
      // The temporary file must exist while the body streams in, or this test proves nothing.
      expect(await eventually(() => backupFiles(server).some((name) => name.startsWith('.upload-')))).toBe(true);
      request.destroy();
      expect(await eventually(() => backupFiles(server).length === before.length)).toBe(true);
      expect(backupFiles(server)).toEqual(before);
    });
  });
});

describe('upload size limit (UPLOAD_MAX_SIZE_MB=1)', () => {
  let server: UploadServer;
  beforeAll(async () => {
    server = await startUploadServer({ UPLOAD_MAX_SIZE_MB: '1' });
  });
  afterAll(async () => {
    await server?.close();
  });

  const bigDump = () => gzipSync(DUMP + randomBytes(1_200_000).toString('base64'), { level: 1 });

  it('a file over the limit → 413 from its declared length, and no file', async () => {
    const gz = bigDump();
    expect(gz.length).toBeGreaterThan(1024 * 1024);
    const { status, body } = await post(server, form('big.sql.gz', gz));
    expect(status).toBe(413);
    expect(body.message).toMatch(/UPLOAD_MAX_SIZE_MB/);
    expect(backupFiles(server)).toEqual([]);
  });

  it('a chunked body over the limit → 413 once the limit is passed, and no file', async () => {
    const gz = bigDump();
    const boundary = 'lifeboat-chunked';
    const url = new URL(server.url);
    const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const request = http.request(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { authorization: `Bearer ${server.admin}`, 'content-type': `multipart/form-data; boundary=${boundary}` } },
        (response) => {
          let body = '';
          response.on('data', (chunk) => (body += chunk));
          response.on('end', () => resolve({ status: response.statusCode!, body }));
        },
      );
      request.on('error', reject);
      // No Content-Length: the limit can only be found while streaming.
      request.write(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="chunked.sql.gz"\r\n\r\n`);
      for (let offset = 0; offset < gz.length; offset += 64 * 1024) request.write(gz.subarray(offset, offset + 64 * 1024));
      request.end(`\r\n--${boundary}--\r\n`);
    });
    expect(result.status).toBe(413);
    expect(await eventually(() => backupFiles(server).length === 0)).toBe(true);
  });

  it('a file under the limit is accepted', async () => {
    const { status } = await post(server, form('small.sql.gz', gzipSync(DUMP)));
    expect(status).toBe(201);
    expect(backupFiles(server)).toEqual(['uploaded-small.sql.gz']);
  });
});
