import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { UserRepository, UserRow } from '../repositories/user.repository';
import type { StorageService } from './storage.service';
import { badRequest, unauthorized } from '../errors';

const scrypt = promisify(scryptCb) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number }) => Promise<Buffer>;

export const SESSION_COOKIE = 'immich_access_token';
const SESSION_DAYS = 30;
const SCRYPT = { N: 16384, r: 8, p: 1 };

export interface AuthUser {
  id: string;
  email: string;
  name: string;
  isAdmin: boolean;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, { N: Number(n), r: Number(r), p: Number(p) });
  return timingSafeEqual(actual, expected);
}

let dummy: Promise<string> | null = null;
const dummyHash = () => (dummy ??= hashPassword(randomBytes(16).toString('hex')));

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function toAuthUser(row: UserRow): AuthUser {
  return { id: row.id, email: row.email, name: row.name, isAdmin: row.is_admin };
}

export interface NewUser {
  email: unknown;
  password: unknown;
  name: unknown;
}

export function validateNewUser(input: NewUser): { email: string; password: string; name: string } {
  const email = typeof input.email === 'string' ? input.email.trim() : '';
  const password = typeof input.password === 'string' ? input.password : '';
  const name = typeof input.name === 'string' ? input.name.trim() : '';
  if (!/^[^\s@]+@[^\s@]+$/.test(email)) throw badRequest('Enter a valid email address');
  if (password.length < 8) throw badRequest('The password must have at least 8 characters');
  if (!name) throw badRequest('Enter a name');
  return { email, password, name };
}

export class AuthService {
  constructor(
    private readonly users: UserRepository,
    private readonly storage: StorageService,
  ) {}

  async adminSignUp(input: NewUser): Promise<AuthUser> {
    const user = validateNewUser(input);
    if (await this.users.hasAdmin()) throw badRequest('Admin setup is not available');
    const row = await this.users.createFirstAdmin({ ...user, password: await hashPassword(user.password), storageLabel: 'admin' });
    if (!row) throw badRequest('Admin setup is not available');
    await this.storage.ensureUserFolders(row.id, row.storage_label);
    return toAuthUser(row);
  }

  /** The same answer for an unknown email and a wrong password, so neither is revealed. */
  async login(input: { email: unknown; password: unknown }): Promise<{ accessToken: string; user: AuthUser; expiresAt: Date }> {
    const email = typeof input.email === 'string' ? input.email.trim() : '';
    const password = typeof input.password === 'string' ? input.password : '';
    const row = email ? await this.users.getByEmail(email) : undefined;
    // An unknown email costs the same scrypt work as a wrong password, so timing reveals nothing either.
    const ok = row ? await verifyPassword(password, row.password) : await verifyPassword(password, await dummyHash()).then(() => false);
    if (!row || !ok) throw unauthorized('Incorrect email or password');
    const accessToken = randomBytes(32).toString('base64url');
    const expiresAt = new Date(Date.now() + SESSION_DAYS * 24 * 3600 * 1000);
    await this.users.createSession(row.id, hashToken(accessToken), expiresAt);
    return { accessToken, user: toAuthUser(row), expiresAt };
  }

  async logout(token: string): Promise<void> {
    await this.users.deleteSession(hashToken(token));
  }

  async validateToken(token: string): Promise<AuthUser | null> {
    const row = await this.users.getBySessionToken(hashToken(token));
    return row ? toAuthUser(row) : null;
  }

  hasAdmin(): Promise<boolean> {
    return this.users.hasAdmin();
  }
}
