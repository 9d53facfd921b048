import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration, parseDurationFlag } from './duration.js';

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

describe('duration flags', () => {
  it.each([
    ['3600', 3600],
    [' 90 ', 90],
    ['1', 1],
    ['1h30m', 5400],
    ['7d', 604800],
  ])('takes %j', (text, seconds) => {
    expect(parseDurationFlag(text, '--ttl')).toBe(seconds);
  });

  it.each<[string, string]>([
    ['0', '--ttl: "0" must be greater than zero'],
    ['-5', '--ttl: "-5" is not a duration (use seconds, or e.g. 30s, 15m, 1h30m, 7d)'],
    ['1.5', '--ttl: "1.5" is not a duration (use seconds, or e.g. 30s, 15m, 1h30m, 7d)'],
    ['', '--ttl: "" is not a duration (use seconds, or e.g. 30s, 15m, 1h30m, 7d)'],
    ['soon', '--ttl: "soon" is not a duration (use seconds, or e.g. 30s, 15m, 1h30m, 7d)'],
    ['1e3', '--ttl: "1e3" is not a duration (use seconds, or e.g. 30s, 15m, 1h30m, 7d)'],
    ['0x10', '--ttl: "0x10" is not a duration (use seconds, or e.g. 30s, 15m, 1h30m, 7d)'],
    ['99999999999999999999', '--ttl: "99999999999999999999" is too large'],
    ['99999999999999999999d', '--ttl: "99999999999999999999d" is too large'],
  ])('refuses %j', (text, message) => {
    expect(() => parseDurationFlag(text, '--ttl')).toThrow(message);
    expect(() => parseDurationFlag(text, '--ttl')).toThrow(new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  });
});
