import type { Lifeboat } from './app';

/** The running app of this process, set once by the init hook. */
let current: Lifeboat | null = null;

export function setInstance(app: Lifeboat): void {
  current = app;
}

export function instance(): Lifeboat {
  if (!current) throw new Error('Lifeboat has not started yet');
  return current;
}
