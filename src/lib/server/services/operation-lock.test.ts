import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OperationLock } from './operation-lock';

const dirs: string[] = [];
function lockDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-lock-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

describe('OperationLock', () => {
  it('lets one operation in at a time, and the next after release', async () => {
    const lock = new OperationLock(lockDir());
    const release = lock.acquire('backup');
    expect(() => lock.acquire('restore')).toThrow(/A backup is already running/);
    release();
    await expect(lock.run('restore', async () => 'ran')).resolves.toBe('ran');
    expect(lock.current).toBeNull();
  });

  it('refuses while another live process holds the lock file, in this boot', () => {
    const dir = lockDir();
    // The parent process (vitest's main process) is alive.
    writeFileSync(join(dir, 'operation.lock'), JSON.stringify({ pid: process.ppid, bootId, name: 'restore' }));
    expect(() => new OperationLock(dir).acquire('backup')).toThrow(/another Lifeboat process/);
  });

  it('takes over a lock file left by a dead process, or by a process before a reboot', () => {
    const dir = lockDir();
    const file = join(dir, 'operation.lock');
    writeFileSync(file, JSON.stringify({ pid: 2 ** 22 + 1, bootId, name: 'backup' }));
    new OperationLock(dir).acquire('backup')();
    // A live pid, but recorded in an earlier boot: that pid now belongs to something else.
    writeFileSync(file, JSON.stringify({ pid: process.ppid, bootId: 'an-earlier-boot', name: 'backup' }));
    const release = new OperationLock(dir).acquire('backup');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ pid: process.pid, bootId, name: 'backup' });
    release();
  });
});
