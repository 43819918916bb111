import type { Database } from '../db/database';

export interface UserRow {
  id: string;
  email: string;
  name: string;
  password: string;
  is_admin: boolean;
  storage_label: string | null;
  created_at: Date;
}

const COLUMNS = 'id, email, name, password, is_admin, storage_label, created_at';
/** Advisory lock key for the first admin's sign-up ("1stadmin" in ASCII). */
const FIRST_ADMIN_LOCK = 0x31737461646d696en.toString();

export class UserRepository {
  constructor(private readonly db: Database) {}

  async hasAdmin(): Promise<boolean> {
    const { rowCount } = await this.db.query('SELECT 1 FROM users WHERE is_admin AND deleted_at IS NULL LIMIT 1');
    return (rowCount ?? 0) > 0;
  }

  async getByEmail(email: string): Promise<UserRow | undefined> {
    const { rows } = await this.db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL`, [email]);
    return rows[0];
  }

  async list(): Promise<UserRow[]> {
    const { rows } = await this.db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE deleted_at IS NULL ORDER BY created_at`);
    return rows;
  }

  async create(user: { email: string; name: string; password: string; isAdmin: boolean; storageLabel: string | null }): Promise<UserRow> {
    const { rows } = await this.db.query<UserRow>(
      `INSERT INTO users (email, name, password, is_admin, storage_label) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`,
      [user.email, user.name, user.password, user.isAdmin, user.storageLabel],
    );
    return rows[0];
  }

  /**
   * Creates the admin unless one exists, in one transaction under an advisory lock, so two
   * sign-ups at the same moment make one admin. Returns undefined when an admin exists.
   */
  async createFirstAdmin(user: { email: string; name: string; password: string; storageLabel: string | null }): Promise<UserRow | undefined> {
    return this.db.withClient(async (client) => {
      await client.query('BEGIN');
      try {
        await client.query('SELECT pg_advisory_xact_lock($1)', [FIRST_ADMIN_LOCK]);
        const existing = await client.query('SELECT 1 FROM users WHERE is_admin AND deleted_at IS NULL LIMIT 1');
        if (existing.rowCount) {
          await client.query('ROLLBACK');
          return undefined;
        }
        const { rows } = await client.query<UserRow>(
          `INSERT INTO users (email, name, password, is_admin, storage_label) VALUES ($1, $2, $3, true, $4) RETURNING ${COLUMNS}`,
          [user.email, user.name, user.password, user.storageLabel],
        );
        await client.query('COMMIT');
        return rows[0];
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
  }

  async createSession(userId: string, tokenHash: string, expiresAt: Date): Promise<void> {
    await this.db.query('INSERT INTO sessions (token, user_id, expires_at) VALUES ($1, $2, $3)', [tokenHash, userId, expiresAt]);
  }

  async getBySessionToken(tokenHash: string): Promise<UserRow | undefined> {
    const { rows } = await this.db.query<UserRow>(
      `SELECT ${COLUMNS.split(', ').map((c) => `u.${c}`).join(', ')} FROM sessions s JOIN users u ON u.id = s.user_id
       WHERE s.token = $1 AND s.expires_at > now() AND u.deleted_at IS NULL`,
      [tokenHash],
    );
    return rows[0];
  }

  async deleteSession(tokenHash: string): Promise<void> {
    await this.db.query('DELETE FROM sessions WHERE token = $1', [tokenHash]);
  }
}
