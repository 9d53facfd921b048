import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { defaultLogFormat, formatTextRecord, textDestination } from './log.js';

describe('log format', () => {
  it('defaults to text on a terminal and JSON lines otherwise', () => {
    expect(defaultLogFormat({ isTTY: true })).toBe('text');
    expect(defaultLogFormat({ isTTY: false })).toBe('json');
    expect(defaultLogFormat({})).toBe('json');
  });

  it('formats a record as time, level, message and key=value fields', () => {
    const line = JSON.stringify({ level: 40, time: Date.UTC(2026, 11, 5, 18, 0, 0, 123), pid: 7, hostname: 'h', name: 'anchorage-server', msg: 'federation: bundle refresh failed', trustDomain: 'b.test', failures: 3, ok: false, err: 'connect ECONNREFUSED 127.0.0.1:1', root: { kind: 'self-signed' } });
    expect(formatTextRecord(line)).toBe(
      '2026-12-05T18:00:00.123Z WARN  federation: bundle refresh failed trustDomain=b.test failures=3 ok=false err="connect ECONNREFUSED 127.0.0.1:1" root={"kind":"self-signed"}\n',
    );
  });

  it('colours the level only when asked (a terminal without NO_COLOR)', () => {
    const line = JSON.stringify({ level: 50, time: 0, msg: 'x' });
    expect(formatTextRecord(line, true)).toBe('1970-01-01T00:00:00.000Z \u001b[31mERROR\u001b[0m x\n');
  });

  it('escapes what a caller could use to forge a line or drive a terminal, in messages, keys and values', () => {
    const line = JSON.stringify({ level: 30, time: 0, msg: 'bad\nINFO  forged', 'k\u001b[2J': 'v\u202e\r\nx', hint: 'a=b' });
    const out = formatTextRecord(line);
    expect(out).toBe('1970-01-01T00:00:00.000Z INFO  "bad\\nINFO  forged" "k\\u001b[2J"="v\\u202e\\r\\nx" hint="a=b"\n');
    expect(out.split('\n')).toHaveLength(2);
  });

  it('passes a line that is not JSON through, escaped, on one line', () => {
    expect(formatTextRecord('not json \u001b[31m\n')).toBe('"not json \\u001b[31m"\n');
  });

  it('is a pino destination: redaction still applies, one text line per record', () => {
    const lines: string[] = [];
    const log = pino(
      { redact: { paths: ['pin', '*.pin', 'key'], censor: '[redacted]' }, base: undefined },
      textDestination({ write: (s: string) => void lines.push(s) }),
    );
    log.info({ pin: '1234', key: 'secret', nested: { pin: '5678' } }, 'token opened');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO  token opened pin=\[redacted\] key=\[redacted\] nested=\{"pin":"\[redacted\]"\}\n$/);
  });
});
