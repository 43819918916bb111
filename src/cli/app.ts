import { Lifeboat } from '../lib/server/app';
import { loadConfig } from '../lib/server/config';

export { formatBytes } from '../lib/shared/format';

/** Exit codes: 0 success, 1 the operation failed, 2 the command line was wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export class UsageError extends Error {}

/**
 * Starts the app as the web server does (same environment), without the web server and
 * without the scheduler. A stopped instance's embedded PostgreSQL is started and stopped
 * again at the end; a running one's is attached to and left running.
 */
export async function withApp<T>(fn: (app: Lifeboat) => Promise<T>, options: { skipMigrations?: boolean } = {}): Promise<T> {
  const app = await Lifeboat.start(loadConfig(), { log: () => undefined, skipMigrations: options.skipMigrations, awaitResume: true });
  let stopping: Promise<void> | null = null;
  const stop = (signal: string) => {
    if (stopping) return;
    console.error(`\n${signal}: stopping safely (a running restore is cancelled and its transaction rolled back)...`);
    stopping = app.shutdown().finally(() => process.exit(EXIT.failed));
  };
  const onInt = () => stop('SIGINT');
  const onTerm = () => stop('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    return await fn(app);
  } finally {
    process.removeListener('SIGINT', onInt);
    process.removeListener('SIGTERM', onTerm);
    await (stopping ?? app.shutdown());
  }
}

/** One line: the messages of expected failures (409 lock, 400 bad file...) say what to do. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
