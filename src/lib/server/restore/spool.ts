import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The disk a parallel load may borrow: bytes in spool files that exist. A buffer that would go
 * past it waits for its reader instead (plain backpressure), so the spool never grows without bound.
 */
export class SpoolBudget {
  used = 0;
  peak = 0;
  /** Bytes held in memory by all buffers together (bounded too: many queued tables must not add up). */
  memoryUsed = 0;
  private files = 0;

  constructor(
    readonly folder: string,
    readonly limitBytes: number,
    readonly memoryLimitBytes = 64 * 1024 * 1024,
  ) {}

  take(bytes: number): boolean {
    if (this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    this.peak = Math.max(this.peak, this.used);
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }

  nextPath(): string {
    return join(this.folder, `block-${++this.files}.spool`);
  }
}

/**
 * One writer, one reader, in order: what the reader has not taken yet is held in memory up to
 * `memoryBytes`, then, if the budget allows, written to a spool file (removed once read or on
 * close), else the writer waits. So a table's rows can be read ahead of a busy psql without
 * holding them in memory, and the dump is still read only once.
 */
export class SpoolBuffer {
  private chunks: Buffer[] = [];
  private memory = 0;
  private file: { handle: FileHandle; path: string; written: number; read: number } | null = null;
  private spilling = false;
  private ended = false;
  private closed = false;
  private wakeReader: (() => void) | null = null;
  private wakeWriter: (() => void) | null = null;
  /** Bytes written to this buffer in all. */
  total = 0;

  constructor(
    private readonly budget: SpoolBudget,
    /** Whether reading ahead is worth its disk writes now (a connection is idle, waiting for the next part). */
    private readonly mayReadAhead: () => boolean = () => true,
    private readonly memoryBytes = 8 * 1024 * 1024,
    /** At most this much of one block goes to disk: each byte spooled costs a write and a read, worth it only if another block lies ahead. */
    private readonly spillLimitBytes = Infinity,
  ) {}

  /** Resolves once the bytes are held (in memory or on disk); waits while the reader is behind and the budget is spent. */
  async push(chunk: Buffer): Promise<void> {
    if (this.closed) throw new Error('The buffer was closed');
    this.total += chunk.length;
    for (;;) {
      if (this.spilling && this.file) {
        if (this.file.written + chunk.length <= this.spillLimitBytes && this.budget.take(chunk.length)) {
          await this.file.handle.write(chunk, 0, chunk.length, this.file.written);
          this.file.written += chunk.length;
          return this.notifyReader();
        }
        // Budget or this block's share spent: wait until the reader has read the whole file, then go on in memory.
        await this.waitForReader(() => this.file!.read >= this.file!.written);
        if (this.closed) throw new Error('The buffer was closed');
        this.spilling = false;
        continue;
      }
      // Always room for one chunk: a buffer whose reader waits for it must be able to make progress.
      if (this.memory < this.memoryBytes && (this.memory === 0 || this.budget.memoryUsed + chunk.length <= this.budget.memoryLimitBytes)) {
        this.chunks.push(chunk);
        this.memory += chunk.length;
        this.budget.memoryUsed += chunk.length;
        return this.notifyReader();
      }
      const spilled = this.file?.written ?? 0;
      if (this.budget.limitBytes > 0 && this.budget.used + chunk.length <= this.budget.limitBytes && spilled + chunk.length <= this.spillLimitBytes && this.mayReadAhead()) {
        if (!this.file) {
          const path = this.budget.nextPath();
          this.file = { handle: await open(path, 'w+', 0o600), path, written: 0, read: 0 };
        }
        this.spilling = true;
        continue;
      }
      const held = this.memory;
      await this.waitForReader(() => this.memory < Math.min(held, this.memoryBytes));
      if (this.closed) throw new Error('The buffer was closed');
    }
  }

  end(): void {
    this.ended = true;
    this.notifyReader();
  }

  /** The bytes in the order written; the spool file goes once read. */
  async *read(): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        if (this.closed) return;
        const chunk = this.chunks.shift();
        if (chunk) {
          this.memory -= chunk.length;
          this.budget.memoryUsed -= chunk.length;
          this.notifyWriter();
          yield chunk;
          continue;
        }
        const file = this.file;
        if (file && file.read < file.written) {
          const size = Math.min(1024 * 1024, file.written - file.read);
          const buffer = Buffer.allocUnsafe(size);
          const { bytesRead } = await file.handle.read(buffer, 0, size, file.read);
          file.read += bytesRead;
          this.notifyWriter();
          yield buffer.subarray(0, bytesRead);
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.wakeReader = resolve));
      }
    } finally {
      await this.close();
    }
  }

  /** Removes the spool file and gives its bytes back; wakes a waiting writer (which then fails). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.budget.memoryUsed -= this.memory;
    this.memory = 0;
    this.chunks = [];
    this.notifyWriter();
    this.notifyReader();
    const file = this.file;
    this.file = null;
    if (file) {
      this.budget.give(file.written);
      await file.handle.close().catch(() => undefined);
      await rm(file.path, { force: true });
    }
  }

  private notifyReader(): void {
    const wake = this.wakeReader;
    this.wakeReader = null;
    wake?.();
  }

  private notifyWriter(): void {
    const wake = this.wakeWriter;
    this.wakeWriter = null;
    wake?.();
  }

  private async waitForReader(ready: () => boolean): Promise<void> {
    while (!this.closed && !ready()) await new Promise<void>((resolve) => (this.wakeWriter = resolve));
  }
}

/** The spool folder is made empty for each load and removed after it, whatever happened. */
export async function withSpoolFolder<T>(folder: string, run: (folder: string) => Promise<T>): Promise<T> {
  await rm(folder, { recursive: true, force: true });
  await mkdir(folder, { recursive: true, mode: 0o700 });
  try {
    return await run(folder);
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

/** What a killed load left in the spool folder: removed at the next start. */
export async function clearSpoolFolder(folder: string): Promise<void> {
  await rm(folder, { recursive: true, force: true });
}
