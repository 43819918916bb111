import pkg from '../../../package.json' with { type: 'json' };

export const APP_VERSION: string = pkg.version;

export function parseVersion(version: string): { major: number; minor: number; patch: number } {
  const [major = 0, minor = 0, patch = 0] = version.split('.').map((part) => parseInt(part, 10) || 0);
  return { major, minor, patch };
}
