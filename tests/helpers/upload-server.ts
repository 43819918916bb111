import { readdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { handleUpload, UPLOAD_PATH } from '../../src/lib/server/http/upload-route';
import { startInstance, type TestInstance } from './pg';

/** The beginning of real `pg_dump` 15 output, then a table and its data (no end line). */
export const DUMP = `--
-- PostgreSQL database dump
--

-- Dumped from database version 15.18
-- Dumped by pg_dump version 15.18

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE public.notes (id integer NOT NULL, body text);

COPY public.notes (id, body) FROM stdin;
1	hello
\\.
`;

export interface UploadServer {
  url: string;
  instance: TestInstance;
  /** Access tokens: an admin's and a plain user's. */
  admin: string;
  user: string;
  close(): Promise<void>;
}

/** The upload route exactly as server.js mounts it, in front of nothing, on a real app and database. */
export async function startUploadServer(env: Record<string, string> = {}): Promise<UploadServer> {
  const instance = await startInstance({ env });
  const { app } = instance;
  await app.auth.adminSignUp({ email: 'admin@example.com', password: 'password123', name: 'Admin' });
  await app.userService.create({ email: 'user@example.com', password: 'password123', name: 'User' });
  const admin = (await app.auth.login({ email: 'admin@example.com', password: 'password123' })).accessToken;
  const user = (await app.auth.login({ email: 'user@example.com', password: 'password123' })).accessToken;
  const server = http.createServer((req, res) => {
    if (req.url === UPLOAD_PATH && req.method === 'POST') handleUpload(req, res, app);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${UPLOAD_PATH}`,
    instance,
    admin,
    user,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await instance.close();
    },
  };
}

export function uploadForm(name: string, content: Buffer | string, field = 'file'): FormData {
  const body = new FormData();
  body.append(field, new Blob([typeof content === 'string' ? content : new Uint8Array(content)]), name);
  return body;
}

export async function postUpload(server: UploadServer, body: FormData, headers: Record<string, string> = {}) {
  const response = await fetch(server.url, { method: 'POST', body, headers: { authorization: `Bearer ${server.admin}`, ...headers } });
  return { status: response.status, body: (await response.json()) as { message?: string; filename?: string; kind?: string; filesize?: number } };
}

/** Everything in backups/ but the folder marker and manifests: must stay empty after every refusal. */
export function backupFiles(server: UploadServer): string[] {
  return readdirSync(join(server.instance.uploadLocation, 'backups')).filter((name) => name !== '.immich' && !name.endsWith('.manifest.json'));
}

export async function eventually(check: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}
