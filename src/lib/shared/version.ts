/** Compares dotted versions numerically ("1.10.0" > "1.9.3"); negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.replace(/^v/, '').split('.').map((part) => parseInt(part, 10) || 0);
  const pb = b.replace(/^v/, '').split('.').map((part) => parseInt(part, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length, 3); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

export type Compatibility = 'same' | 'older' | 'newer' | 'unknown';

export function compatibilityOf(backupVersion: string | null, appVersion: string): Compatibility {
  if (!backupVersion) return 'unknown';
  const diff = compareVersions(backupVersion, appVersion);
  return diff === 0 ? 'same' : diff < 0 ? 'older' : 'newer';
}
