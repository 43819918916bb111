import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export class ChildProcessError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    readonly exitCode: number | null,
    /** Killed because its signal aborted: the caller's reason says more than this message. */
    readonly cancelled = false,
  ) {
    super(message);
    this.name = 'ChildProcessError';
  }
}

export interface ManagedChild {
  child: ChildProcess;
  /** Resolves on exit code 0; rejects with stderr otherwise, or when aborted or timed out. */
  done: Promise<void>;
  kill(reason: string): void;
}

const STDERR_LIMIT = 64 * 1024;

/**
 * Spawns a PostgreSQL tool with arguments as an array (never a shell string), keeps its
 * stderr, and kills it when the signal aborts, when it hangs past the timeout, or when the
 * process exits: a child is never leaked.
 */
export function startChild(command: string, args: string[], options: SpawnOptions & { signal?: AbortSignal; timeoutMs?: number }): ManagedChild {
  const { signal, timeoutMs, ...spawnOptions } = options;
  const child = spawn(command, args, { ...spawnOptions, stdio: spawnOptions.stdio ?? ['pipe', 'pipe', 'pipe'] });
  const name = command.split('/').pop();
  let stderr = '';
  let killedFor: string | null = null;
  const cancelReason = `${name} was cancelled`;
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    if (stderr.length < STDERR_LIMIT) stderr += chunk;
  });

  const kill = (reason: string) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    killedFor ??= reason;
    child.kill('SIGTERM');
    // psql/pg_dump exit promptly on SIGTERM; SIGKILL if they do not.
    setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'), 5000).unref();
  };
  const onAbort = () => kill(cancelReason);
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const timer = timeoutMs ? setTimeout(() => kill(`${name} ran longer than ${formatDuration(timeoutMs)} and was stopped as hung`), timeoutMs) : null;
  timer?.unref();
  const onExit = () => kill('the server is shutting down');
  process.once('exit', onExit);

  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (error) => reject(new ChildProcessError(`${name} could not start: ${error.message}`, stderr, null)));
    child.once('close', (code) => {
      signal?.removeEventListener('abort', onAbort);
      if (timer) clearTimeout(timer);
      process.removeListener('exit', onExit);
      if (code === 0 && !killedFor) return resolve();
      const detail = stderr.trim();
      const why = killedFor ?? `${name} exited with code ${code}`;
      reject(new ChildProcessError(detail ? `${why}: ${detail}` : why, stderr, code, killedFor === cancelReason));
    });
  });
  return { child, done, kill };
}

function formatDuration(ms: number): string {
  return ms >= 120_000 ? `${Math.round(ms / 60_000)} minutes` : `${Math.round(ms / 1000)} seconds`;
}
