import type { IncomingMessage, ServerResponse } from 'node:http';
import multer from 'multer';
import type { Lifeboat } from '../app';
import { UploadRepository } from '../repositories/upload.repository';
import { BackupUploadService, UploadTooLargeError } from '../services/backup-upload.service';
import { badRequest, forbidden, ServiceError } from '../errors';
import { adminRefusal, credentialsOfNode, resolveAccess } from './access';
import { registerNodeRoute } from './node-bridge';
import { checkingDiskStorage, type GzipChecked } from './upload-storage';

export const UPLOAD_PATH = '/api/admin/database-backups/upload';
export const UPLOAD_FIELD = 'file';
// Room for the multipart boundaries and part headers around the file itself.
const MULTIPART_OVERHEAD = 64 * 1024;

const services = new WeakMap<Lifeboat, BackupUploadService>();

export function uploadServiceFor(app: Lifeboat): BackupUploadService {
  let service = services.get(app);
  if (!service) {
    service = new BackupUploadService(app.backups, app.storageRepository, new UploadRepository(), app.config.uploadMaxBytes, app.config.database.database, app.config.igzip);
    services.set(app, service);
  }
  return service;
}

/**
 * POST /api/admin/database-backups/upload, served by the Node server before SvelteKit: the
 * file streams through multer's disk storage, so neither the 512K body limit nor memory
 * bound its size. Called once at start.
 */
export function registerUploadRoute(app: Lifeboat): void {
  uploadServiceFor(app)
    .removeStaleTemps()
    .then((names) => names.length && app.log(`Removed ${names.length} temporary file(s) of interrupted uploads`))
    .catch((error) => app.log(`Could not remove temporary upload files: ${(error as Error).message}`));
  registerNodeRoute('POST', UPLOAD_PATH, handleUpload);
}

export function handleUpload(req: IncomingMessage, res: ServerResponse, app: Lifeboat): void {
  upload(req, res, app).catch((error) => {
    console.error('[lifeboat] upload failed', error);
    send(res, 500, 'Internal error, see the server log');
  });
}

async function upload(req: IncomingMessage, res: ServerResponse, app: Lifeboat): Promise<void> {
  const service = uploadServiceFor(app);
  try {
    // This route gets no SvelteKit CSRF check: a browser always sends Origin on a cross-site POST.
    if (!sameOrigin(req)) throw forbidden('Cross-site upload refused');
    await authorize(req, app);
    if (!/^multipart\/form-data/i.test(req.headers['content-type'] ?? '')) throw badRequest(`Send the backup as multipart/form-data in the field "${UPLOAD_FIELD}"`);
    // Refuse what is surely too big before reading it; a body without Content-Length is cut by multer's limit.
    const declared = Number(req.headers['content-length']);
    if (declared > service.maxBytes + MULTIPART_OVERHEAD) throw new UploadTooLargeError(service.maxBytes);
  } catch (error) {
    // The body was not read: close the connection rather than drain a file we refuse.
    res.setHeader('connection', 'close');
    return sendError(res, error);
  }

  const temps: string[] = [];
  const discardAll = () => Promise.all(temps.map((path) => service.discard(path)));
  let file: (Express.Multer.File & GzipChecked) | undefined;
  try {
    file = await receive(req, service, temps);
  } catch (error) {
    await discardAll();
    if (error instanceof multer.MulterError) {
      return sendError(res, error.code === 'LIMIT_FILE_SIZE' ? new UploadTooLargeError(service.maxBytes) : badRequest(`${error.message}: send one file in the field "${UPLOAD_FIELD}"`));
    }
    // A disk error (full, permissions) is ours: 500 and the server log.
    if ((error as NodeJS.ErrnoException).syscall) throw error;
    // An aborted or malformed body: multer removed the partial file; nobody may be listening.
    return sendError(res, error instanceof ServiceError ? error : badRequest(`The upload did not complete: ${(error as Error).message}`));
  }
  if (!file) return sendError(res, badRequest(`No file: send the backup in the multipart field "${UPLOAD_FIELD}"`));
  try {
    const accepted = await service.accept(file.path, file.originalname, file.gzipError, file.contents);
    sendJson(res, 201, accepted);
    // Read back from disk and verified, as every new backup is (the list shows the result).
    app.verification.verify(accepted.filename).catch((error) => app.log(`Verification of ${accepted.filename} failed to run: ${(error as Error).message}`));
  } catch (error) {
    await discardAll();
    sendError(res, error);
  }
}

function receive(req: IncomingMessage, service: BackupUploadService, temps: string[]): Promise<(Express.Multer.File & GzipChecked) | undefined> {
  const middleware = multer({
    storage: checkingDiskStorage(() => {
      const path = service.tempPath();
      temps.push(path);
      return path;
    }, service.databaseName, service.igzip),
    limits: { fileSize: service.maxBytes, files: 1, fields: 10, fieldSize: 4096, parts: 12 },
    // Name and conflict are known from the part header: refuse before a byte is stored.
    fileFilter: (_req, file, callback) => {
      service.checkName(file.originalname).then(
        () => callback(null, true),
        (error: Error) => callback(error),
      );
    },
  }).single(UPLOAD_FIELD);
  const request = req as IncomingMessage & { file?: Express.Multer.File & GzipChecked };
  return new Promise((resolve, reject) => {
    // multer is typed for Express, but reads only what a plain IncomingMessage has.
    (middleware as unknown as (req: IncomingMessage, res: unknown, next: (error?: unknown) => void) => void)(req, {}, (error) =>
      error ? reject(error) : resolve(request.file),
    );
  });
}

/** The admin APIs' rule (access.ts), as hooks.server.ts applies it to every SvelteKit route. */
async function authorize(req: IncomingMessage, app: Lifeboat): Promise<void> {
  const refusal = adminRefusal(await resolveAccess(app, credentialsOfNode(req)));
  if (refusal) throw refusal;
}

function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (!origin) return true;
  try {
    // Behind a proxy the public address is ORIGIN, as adapter-node reads it.
    if (process.env.ORIGIN && new URL(process.env.ORIGIN).origin === origin) return true;
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function sendError(res: ServerResponse, error: unknown): void {
  if (error instanceof ServiceError) return send(res, error.status, error.message);
  throw error;
}

function send(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { message });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  // The client may be gone (aborted upload): nothing to answer then.
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
