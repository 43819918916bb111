import { expect, type Page } from '@playwright/test';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import pg from 'pg';
import { EmbeddedCluster } from '../src/lib/server/db/embedded-cluster';
import { hashPassword } from '../src/lib/server/services/auth.service';
import type { BackupFile } from '../src/lib/shared/types';
import type { Instance } from './fixtures';

const run = promisify(execFile);

export const STORAGE_FOLDERS = ['encoded-video', 'library', 'upload', 'profile', 'thumbs', 'backups'];

/** The demo generator (`npm run demo`), attached to the instance's running embedded database. */
export async function addDemoData(instance: Instance, users: number, assets: number, files: 'all' | 'none' = 'all'): Promise<void> {
  await run(process.execPath, ['--import', 'tsx', 'src/cli/demo.ts', '--users', String(users), '--assets', String(assets), '--files', files], {
    env: { ...process.env, UPLOAD_LOCATION: instance.uploadLocation, DB_DATA_LOCATION: instance.dbDataLocation },
    timeout: 120_000,
  });
}

/** Starts a database backup (Job Queues' job) and waits until its file is listed. */
export async function backUp(page: Page): Promise<BackupFile> {
  const list = async () => ((await (await page.request.get('/api/admin/database-backups')).json()) as { backups: BackupFile[] }).backups;
  const before = new Set((await list()).map((b) => b.filename));
  const started = await page.request.post('/api/jobs', { data: { name: 'backup-database' } });
  expect(started.status(), await started.text()).toBe(201);
  // The job's end, not the file's appearance: the job holds the lock a moment longer (retention, history).
  await expect
    .poll(async () => ((await (await page.request.get('/api/jobs')).json()) as Array<{ active: number }>)[0].active, { timeout: 60_000 })
    .toBe(0);
  const made = (await list()).find((b) => b.kind === 'routine' && !before.has(b.filename));
  expect(made, 'the new backup in the list').toBeTruthy();
  return made!;
}

export async function photoCount(page: Page): Promise<number> {
  await page.goto('/photos');
  const text = await page.getByTestId('asset-count').textContent();
  return Number(text?.match(/\d+/)?.[0]);
}

export async function createUser(page: Page, user: { email: string; name: string; password: string }): Promise<void> {
  await page.goto('/admin/users');
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Name').fill(user.name);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Create user' }).click();
  await expect(page.getByRole('cell', { name: user.email })).toBeVisible();
}

/** Copies an instance's storage folders (not its state or database) into another UPLOAD_LOCATION. */
export function copyStorage(from: string, to: string): void {
  for (const folder of STORAGE_FOLDERS) {
    if (existsSync(join(from, folder))) cpSync(join(from, folder), join(to, folder), { recursive: true });
  }
}

/** Entries the integrity check counts: everything but its marker file. */
export function entriesIn(folder: string): number {
  return existsSync(folder) ? readdirSync(folder).filter((name) => name !== '.immich').length : 0;
}

/**
 * Holds the restore in its first step: a staged restore creates its new database first, and
 * CREATE DATABASE waits while this (superuser) session holds pg_database in SHARE mode. Connections
 * and reads go on; the page shows the restore running until release.
 */
export async function holdDatabaseCreation(instance: Instance): Promise<() => Promise<void>> {
  const client = new pg.Client(new EmbeddedCluster({ dataDir: instance.dbDataLocation }).connection('postgres'));
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE pg_catalog.pg_database IN SHARE MODE');
  return async () => {
    await client.query('COMMIT').catch(() => undefined);
    await client.end().catch(() => undefined);
  };
}

export const OLD_ADMIN = { email: 'old-admin@example.com', password: 'old-admin-password', name: 'Old Admin' };

interface DumpOptions {
  assets: number;
  /** A malformed row at this asset: psql stops there, in the middle of the data. */
  corruptAt?: number;
  /** false: the only user is not an admin, so the restored instance fails its health check. */
  admin?: boolean;
}

/**
 * A database dump as pg_dump 15 writes it for an instance at schema 1.0.0 (before albums):
 * restoring it runs the 1.1.0 migration. It holds OLD_ADMIN and `assets` photos.
 */
export async function versionOneDump(options: DumpOptions): Promise<string> {
  const adminId = '5b0f3c1e-4c52-4f0e-9a4d-0e1f2b3c4d5e';
  const password = await hashPassword(OLD_ADMIN.password);
  const at = '2024-01-05 10:15:00+00';
  const assets: string[] = [];
  for (let i = 1; i <= options.assets; i++) {
    const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    const checksum = `\\\\x${i.toString(16).padStart(40, '0')}`;
    const row = [id, adminId, 'IMAGE', `upload/${adminId}/00/00/${id}.jpg`, `IMG_${String(i).padStart(4, '0')}.jpg`, checksum, at, '\\N', '\\N', '\\N', at, at, '\\N'];
    assets.push(i === options.corruptAt ? row.join('\t').replace(id, 'not-a-uuid') : row.join('\t'));
  }
  return `--
-- PostgreSQL database dump
--

-- Dumped from database version 15.10 (Debian 15.10-0+deb12u1)
-- Dumped by pg_dump version 15.10 (Debian 15.10-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.assets (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    owner_id uuid NOT NULL,
    type character varying NOT NULL,
    original_path text NOT NULL,
    original_file_name character varying NOT NULL,
    checksum bytea NOT NULL,
    file_created_at timestamp with time zone NOT NULL,
    thumbnail_path text,
    preview_path text,
    encoded_video_path text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    CONSTRAINT assets_type_check CHECK (((type)::text = ANY ((ARRAY['IMAGE'::character varying, 'VIDEO'::character varying])::text[])))
);

ALTER TABLE public.assets OWNER TO postgres;

CREATE TABLE public.migrations (
    name character varying NOT NULL,
    version character varying NOT NULL,
    executed_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE public.migrations OWNER TO postgres;

CREATE TABLE public.sessions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    token character varying NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

ALTER TABLE public.sessions OWNER TO postgres;

CREATE TABLE public.system_metadata (
    key character varying NOT NULL,
    value jsonb NOT NULL
);

ALTER TABLE public.system_metadata OWNER TO postgres;

CREATE TABLE public.users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    email character varying NOT NULL,
    name character varying DEFAULT ''::character varying NOT NULL,
    password character varying DEFAULT ''::character varying NOT NULL,
    is_admin boolean DEFAULT false NOT NULL,
    storage_label character varying,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone
);

ALTER TABLE public.users OWNER TO postgres;

COPY public.assets (id, owner_id, type, original_path, original_file_name, checksum, file_created_at, thumbnail_path, preview_path, encoded_video_path, created_at, updated_at, deleted_at) FROM stdin;
${assets.join('\n')}
\\.

COPY public.migrations (name, version, executed_at) FROM stdin;
1000000000000-InitialSchema	1.0.0	${at}
\\.

COPY public.sessions (id, token, user_id, created_at, expires_at) FROM stdin;
\\.

COPY public.system_metadata (key, value) FROM stdin;
\\.

COPY public.users (id, email, name, password, is_admin, storage_label, created_at, updated_at, deleted_at) FROM stdin;
${adminId}	${OLD_ADMIN.email}	${OLD_ADMIN.name}	${password}	${options.admin === false ? 'f' : 't'}	admin	${at}	${at}	\\N
\\.

ALTER TABLE ONLY public.assets
    ADD CONSTRAINT assets_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.migrations
    ADD CONSTRAINT migrations_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_token_key UNIQUE (token);

ALTER TABLE ONLY public.system_metadata
    ADD CONSTRAINT system_metadata_pkey PRIMARY KEY (key);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_email_key UNIQUE (email);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_storage_label_key UNIQUE (storage_label);

CREATE INDEX assets_owner_id_file_created_at_idx ON public.assets USING btree (owner_id, file_created_at DESC);

CREATE UNIQUE INDEX assets_owner_id_checksum_idx ON public.assets USING btree (owner_id, checksum);

ALTER TABLE ONLY public.assets
    ADD CONSTRAINT assets_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

--
-- PostgreSQL database dump complete
--

`;
}

export async function versionOneDumpGz(options: DumpOptions): Promise<Buffer> {
  return gzipSync(await versionOneDump(options));
}

/** Picks a file in the upload card the way a user does: the button opens the browser's file chooser. */
export async function chooseUpload(page: Page, file: { name: string; mimeType: string; buffer: Buffer }): Promise<void> {
  const chooser = page.waitForEvent('filechooser');
  await page.getByRole('button', { name: 'Select from computer' }).click();
  await (await chooser).setFiles(file);
}

export function entry(page: Page, filename: string) {
  return page.locator(`[data-testid="backup-entry"][data-filename="${filename}"]`);
}

