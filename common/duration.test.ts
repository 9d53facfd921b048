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

  // Found by test/fuzz/config.fuzz.test.ts: the raw text made multi-line
  // config errors and could carry escape sequences to the terminal.
  it('quotes the text in its error so control characters stay escaped and the message one line', () => {
    expect(() => parseDuration('1h\nx', 'ca.ttl')).toThrow(/^ca\.ttl: "1h\\nx" is not a duration \(use e\.g\. 30s, 15m, 1h30m, 7d\)$/);
    expect(() => parseDuration('\u001b[31m', 'ttl')).toThrow('ttl: "\\u001b[31m" is not a duration');
    expect(() => parseDuration('1h', 'ttl')).not.toThrow();
    expect(() => parseDuration('0s', 'ttl')).toThrow('ttl: "0s" must be greater than zero');
  });
});
