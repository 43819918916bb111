import type { UserDto } from '../../shared/types';
import type { UserRepository, UserRow } from '../repositories/user.repository';
import { hashPassword, validateNewUser, type NewUser } from './auth.service';
import { conflict } from '../errors';
import type { StorageService } from './storage.service';

function toDto(row: UserRow): UserDto {
  return { id: row.id, email: row.email, name: row.name, isAdmin: row.is_admin, storageLabel: row.storage_label, createdAt: row.created_at.toISOString() };
}

export class UserService {
  constructor(
    private readonly users: UserRepository,
    private readonly storage: StorageService,
  ) {}

  async list(): Promise<UserDto[]> {
    return (await this.users.list()).map(toDto);
  }

  async create(input: NewUser): Promise<UserDto> {
    const user = validateNewUser(input);
    if (await this.users.getByEmail(user.email)) throw conflict('A user with this email already exists');
    const row = await this.users.create({ ...user, password: await hashPassword(user.password), isAdmin: false, storageLabel: null }).catch((error) => {
      // The same email sent twice at once: the unique index decides.
      if ((error as { code?: string }).code === '23505') throw conflict('A user with this email already exists');
      throw error;
    });
    await this.storage.ensureUserFolders(row.id, row.storage_label);
    return toDto(row);
  }
}
