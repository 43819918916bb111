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

export type VersionSource = 'name' | 'contents' | null;

/** Appended to a version's words when it was read from inside the dump rather than its name. */
export const FROM_CONTENTS = "(read from the file's contents)";

/** The compatibility icon's meaning in words: one home for the list's icon and the wizard's summary. */
export function compatibilityTitle(backupVersion: string | null, appVersion: string, source: VersionSource = 'name'): string {
  const from = source === 'contents' ? ` ${FROM_CONTENTS}` : '';
  switch (compatibilityOf(backupVersion, appVersion)) {
    case 'same':
      return `Made by this version (v${appVersion})${from}`;
    case 'older':
      return `Made by an older version (v${backupVersion})${from}; migrations will bring it up to v${appVersion} after the restore`;
    case 'newer':
      return `Made by a newer version (v${backupVersion})${from}; this version (v${appVersion}) may not be able to use it`;
    default:
      return "Version unknown: neither the file name nor the file's contents tell it";
  }
}
