import { describe, expect, it } from 'vitest';
import { compareVersions, compatibilityOf } from './version';

describe('compareVersions', () => {
  it('compares numerically, part by part', () => {
    expect(compareVersions('1.10.0', '1.9.3')).toBeGreaterThan(0);
    expect(compareVersions('1.9.3', '1.10.0')).toBeLessThan(0);
    expect(compareVersions('2.0.0', '1.99.99')).toBeGreaterThan(0);
    expect(compareVersions('1.1.0', '1.1.0')).toBe(0);
    expect(compareVersions('1.1.1', '1.1.0')).toBeGreaterThan(0);
  });

  it('treats missing parts as zero and ignores a leading v', () => {
    expect(compareVersions('1.1', '1.1.0')).toBe(0);
    expect(compareVersions('v1.2.0', '1.2.0')).toBe(0);
    expect(compareVersions('1', '0.9.9')).toBeGreaterThan(0);
  });
});

describe('compatibilityOf', () => {
  it('says whether a backup is from this version, an older or a newer one', () => {
    expect(compatibilityOf('1.1.0', '1.1.0')).toBe('same');
    expect(compatibilityOf('1.0.0', '1.1.0')).toBe('older');
    expect(compatibilityOf('1.9.0', '1.10.0')).toBe('older');
    expect(compatibilityOf('1.2.0', '1.1.0')).toBe('newer');
    expect(compatibilityOf('1.136.0', '1.1.0')).toBe('newer');
  });

  it('is unknown when the name gave no version', () => {
    expect(compatibilityOf(null, '1.1.0')).toBe('unknown');
    expect(compatibilityOf('', '1.1.0')).toBe('unknown');
  });
});
