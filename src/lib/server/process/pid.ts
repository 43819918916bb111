/**
 * True while a process with this pid exists (EPERM: it exists but belongs to another user).
 * 0 or a negative number is never a process: kill() would signal a process group instead.
 */
export function isAlive(pid: number | string): boolean {
  // Read from JSON files: a pid written as a string still counts.
  const n = Number(pid);
  if (!Number.isInteger(n) || n <= 0) return false;
  try {
    process.kill(n, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
