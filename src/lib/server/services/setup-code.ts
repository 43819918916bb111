import { createHash, randomInt, timingSafeEqual } from 'node:crypto';

/** Crockford's base32: no I, L, O or U, so a code read from a log is typed back without confusion. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const GROUPS = 5;
const GROUP_LENGTH = 4;
/** 20 characters of 5 bits: 100 bits, far beyond guessing over HTTP. */
export const SETUP_CODE_BITS = GROUPS * GROUP_LENGTH * 5;

/** A new code, e.g. "7KQ2-M9XD-0FTR-4HBW-ZC1E". */
export function generateSetupCode(): string {
  const groups: string[] = [];
  for (let g = 0; g < GROUPS; g++) {
    let group = '';
    for (let i = 0; i < GROUP_LENGTH; i++) group += ALPHABET[randomInt(ALPHABET.length)];
    groups.push(group);
  }
  return groups.join('-');
}

/** What a person may type for a code: any case, with or without dashes and spaces; O for 0, I and L for 1. */
export function normaliseSetupCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
}

export function isSetupCode(text: string): boolean {
  const normal = normaliseSetupCode(text);
  return normal.length === GROUPS * GROUP_LENGTH && [...normal].every((char) => ALPHABET.includes(char));
}

/** Compares digests of equal length in constant time, so the answer's timing tells nothing about the code. */
export function setupCodeMatches(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(normaliseSetupCode(text)).digest();
  return timingSafeEqual(digest(given), digest(expected));
}
