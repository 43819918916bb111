import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isAlive } from './pid';

describe('isAlive', () => {
  it('is true for a running process, ours or another user’s', () => {
    expect(isAlive(process.pid)).toBe(true);
    // pid 1 runs as root; under another user kill() answers EPERM, which still means alive.
    expect(isAlive(1)).toBe(true);
    // Lock and state files are JSON: a pid written as a string is the same process.
    expect(isAlive(String(process.pid))).toBe(true);
  });

  it('is false for a process that has exited', () => {
    const { pid } = spawnSync(process.execPath, ['-e', '0']);
    expect(pid).toBeGreaterThan(0);
    expect(isAlive(pid!)).toBe(false);
  });

  it('is false for 0, negative or non-integer pids, which kill() would read as process groups', () => {
    for (const pid of [0, -1, -process.pid, Number.NaN, 1.5, '', 'abc', '0']) expect(isAlive(pid)).toBe(false);
  });
});
