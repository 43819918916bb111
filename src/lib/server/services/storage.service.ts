import { join } from 'node:path';
import type { StorageRepository } from '../repositories/storage.repository';

/** The folders of UPLOAD_LOCATION, in the order the reference's integrity check shows them. */
export const STORAGE_FOLDERS = ['encoded-video', 'library', 'upload', 'profile', 'thumbs', 'backups'] as const;
export type StorageFolder = (typeof STORAGE_FOLDERS)[number];

export const MARKER_FILE = '.immich';

export class StorageLayoutError extends Error {}

export interface FolderIntegrity {
  folder: StorageFolder;
  exists: boolean;
  readable: boolean;
  writable: boolean;
  files: number;
  level: 'ok' | 'warning' | 'error' | 'info';
  hint: string | null;
}

export class StorageService {
  constructor(
    private readonly uploadLocation: string,
    private readonly storage: StorageRepository,
  ) {}

  folder(name: StorageFolder): string {
    return join(this.uploadLocation, name);
  }

  get backupsFolder(): string {
    return this.folder('backups');
  }

  /** Creates the layout on start; refuses to go on when UPLOAD_LOCATION cannot be written. */
  async ensureLayout(): Promise<void> {
    try {
      await this.storage.mkdir(this.uploadLocation);
    } catch (error) {
      throw new StorageLayoutError(`UPLOAD_LOCATION (${this.uploadLocation}) cannot be created: ${(error as Error).message}. Set UPLOAD_LOCATION to a writable folder.`);
    }
    for (const name of STORAGE_FOLDERS) {
      const dir = this.folder(name);
      try {
        await this.storage.mkdir(dir);
      } catch (error) {
        throw new StorageLayoutError(`UPLOAD_LOCATION is not writable: cannot create ${dir} (${(error as Error).message}). Fix the folder's permissions or set UPLOAD_LOCATION to a writable folder.`);
      }
      const marker = join(dir, MARKER_FILE);
      if (!(await this.storage.writeMarker(marker, ''))) {
        throw new StorageLayoutError(`UPLOAD_LOCATION is not writable: cannot write ${marker}. Fix the folder's permissions or set UPLOAD_LOCATION to a writable folder.`);
      }
    }
  }

  /** Per-user folders, as the reference lays them out (library/ only with the storage template on). */
  async ensureUserFolders(userId: string, storageLabel: string | null, storageTemplate = false): Promise<void> {
    for (const name of ['upload', 'thumbs', 'encoded-video', 'profile'] as const) await this.storage.mkdir(join(this.folder(name), userId));
    if (storageTemplate) await this.storage.mkdir(join(this.folder('library'), storageLabel ?? userId));
  }

  /** What the first-run wizard shows: per folder, readable, writable and how many entries. A missing folder is reported, never thrown. */
  async checkIntegrity(): Promise<FolderIntegrity[]> {
    const result: FolderIntegrity[] = [];
    for (const folder of STORAGE_FOLDERS) {
      const dir = this.folder(folder);
      const exists = await this.storage.exists(dir);
      const marker = join(dir, MARKER_FILE);
      const readable = exists && (await this.storage.canRead(marker));
      const writable = exists && (await this.storage.writeMarker(marker, ''));
      let files = 0;
      if (exists) {
        try {
          files = (await this.storage.readdir(dir)).filter((entry) => entry !== MARKER_FILE).length;
        } catch {
          files = 0;
        }
      }
      result.push({ folder, exists, readable, writable, files, ...hintFor(folder, exists, readable, writable, files) });
    }
    return result;
  }
}

function hintFor(folder: StorageFolder, exists: boolean, readable: boolean, writable: boolean, files: number): Pick<FolderIntegrity, 'level' | 'hint'> {
  if (!exists) return { level: 'error', hint: 'Folder is missing. Move the previous instance\'s folder into UPLOAD_LOCATION.' };
  if (!readable || !writable) return { level: 'error', hint: `Folder is not ${!readable ? 'readable' : 'writable'}. Check its owner and permissions.` };
  if (files === 0) {
    if (folder === 'upload' || folder === 'profile') return { level: 'error', hint: 'Missing files: this folder holds originals and should not be empty for an existing instance.' };
    if (folder === 'thumbs' || folder === 'encoded-video') return { level: 'warning', hint: 'Empty: these files can be regenerated after the restore.' };
    if (folder === 'backups') return { level: 'warning', hint: 'No backups found here: upload one in the next step.' };
  }
  if (folder === 'library') return { level: 'info', hint: 'Only used when the storage template is enabled.' };
  return { level: 'ok', hint: null };
}
