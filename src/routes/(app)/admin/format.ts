/** Display helpers for the administration pages; dates and sizes come from the backup list's helpers. */
export { formatBytes, relativeTime } from '$lib/components/backups/format';

export { formatDuration } from '$lib/shared/format';
