import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from './duration.js';

describe('durations', () => {
  it.each([
    ['30s', 30],
    ['15m', 900],
    ['1h30m', 5400],
    ['7d', 604800],
    ['1d2h3m4s', 93784],
  ])('parses %s', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
    expect(parseDuration(formatDuration(seconds))).toBe(seconds);
  });

  it.each(['', '10', '1x', '1m1h', '-5s', '1.5h', '0s', 'h', '1h 30m', '99999999999999999999d'])('rejects %j', (text) => {
    expect(() => parseDuration(text, 'ttl')).toThrow(/^ttl: /);
  });
});
