import { describe, expect, it } from 'vitest';
import { generateSetupCode, isSetupCode, normaliseSetupCode, SETUP_CODE_BITS, setupCodeMatches } from './setup-code';

describe('setup code', () => {
  it('has 100 bits from the CSPRNG, in five groups of Crockford base32', () => {
    expect(SETUP_CODE_BITS).toBeGreaterThanOrEqual(100);
    const codes = new Set(Array.from({ length: 200 }, generateSetupCode));
    expect(codes.size).toBe(200);
    for (const code of codes) {
      expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}$/);
      expect(isSetupCode(code)).toBe(true);
    }
    // Every character of the alphabet turns up: no bias toward a few.
    expect(new Set([...codes].join('').replace(/-/g, '')).size).toBe(32);
  });

  it('accepts what a person types: any case, no dashes, spaces, O for 0, I and L for 1', () => {
    const code = '7KQ2-M9XD-0FTR-4HBW-ZC1E';
    expect(setupCodeMatches(code, code)).toBe(true);
    expect(setupCodeMatches(' 7kq2 m9xd oftr 4hbw zcle ', code)).toBe(true);
    expect(setupCodeMatches('7KQ2M9XD0FTR4HBWZCIE', code)).toBe(true);
    expect(normaliseSetupCode('ab-cd ef')).toBe('ABCDEF');
  });

  it('refuses any other code, a prefix, and the empty string', () => {
    const code = '7KQ2-M9XD-0FTR-4HBW-ZC1E';
    for (const other of ['7KQ2-M9XD-0FTR-4HBW-ZC1F', '7KQ2-M9XD-0FTR-4HBW', '', generateSetupCode(), `${code}0`]) {
      expect(setupCodeMatches(other, code), other).toBe(false);
    }
    expect(isSetupCode('7KQ2-M9XD')).toBe(false);
    expect(isSetupCode('7KQ2-M9XD-0FTR-4HBW-ZC1U')).toBe(false);
  });
});
