/**
 * Released schema versions, oldest first. A migration is never edited once released:
 * backups made by that version must migrate forward with exactly this SQL.
 */
export interface Migration {
  /** Unique, sortable name recorded in the migrations table. */
  name: string;
  /** The app version that shipped this schema. */
  version: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    name: '1000000000000-InitialSchema',
    version: '1.0.0',
    sql: `
      CREATE EXTENSION IF NOT EXISTS pgcrypto;

      CREATE TABLE users (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        email varchar NOT NULL UNIQUE,
        name varchar NOT NULL DEFAULT '',
        password varchar NOT NULL DEFAULT '',
        is_admin boolean NOT NULL DEFAULT false,
        storage_label varchar UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz
      );

      CREATE TABLE sessions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        token varchar NOT NULL UNIQUE,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
      );

      CREATE TABLE assets (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        owner_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        type varchar NOT NULL CHECK (type IN ('IMAGE', 'VIDEO')),
        original_path text NOT NULL,
        original_file_name varchar NOT NULL,
        checksum bytea NOT NULL,
        file_created_at timestamptz NOT NULL,
        thumbnail_path text,
        preview_path text,
        encoded_video_path text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz
      );
      CREATE INDEX assets_owner_id_file_created_at_idx ON assets (owner_id, file_created_at DESC);
      CREATE UNIQUE INDEX assets_owner_id_checksum_idx ON assets (owner_id, checksum);

      CREATE TABLE system_metadata (
        key varchar PRIMARY KEY,
        value jsonb NOT NULL
      );
    `,
  },
  {
    name: '1100000000000-Albums',
    version: '1.1.0',
    sql: `
      CREATE TABLE albums (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        owner_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        album_name varchar NOT NULL DEFAULT 'Untitled Album',
        description text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE album_assets (
        album_id uuid NOT NULL REFERENCES albums(id) ON DELETE CASCADE,
        asset_id uuid NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (album_id, asset_id)
      );
      ALTER TABLE assets ADD COLUMN is_favorite boolean NOT NULL DEFAULT false;
    `,
  },
];

export const LATEST_SCHEMA_VERSION = migrations[migrations.length - 1].version;
