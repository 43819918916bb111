import { describe, expect, it } from 'vitest';
import { estimateSeconds } from './restore-log';

describe('estimateSeconds', () => {
  it('waits for enough to go on, then extrapolates the pace so far', () => {
    expect(estimateSeconds(1000, 0.5)).toBeNull();
    expect(estimateSeconds(10_000, 0.01)).toBeNull();
    expect(estimateSeconds(10_000, 0.25)).toBe(30);
    expect(estimateSeconds(60_000, 0.9)).toBe(7);
    expect(estimateSeconds(5000, 1)).toBe(0);
  });
});
