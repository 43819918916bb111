/** Display helpers for the administration pages; dates and sizes come from the backup list's helpers. */
export { formatBytes, relativeTime } from '$lib/components/backups/format';

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds % 60)} s`;
}
