import { describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { checkRequestText, escapeControls, escapeJsonControls, findControl } from './text.js';

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    expect((err as AnchorageError).code).toBe('invalid_argument');
    return (err as AnchorageError).message;
  }
  throw new Error('expected a refusal');
}

const tail = 'control and bidirectional formatting characters are not accepted';

describe('control characters', () => {
  it('finds C0, DEL, C1, line separators and every bidi control; nothing else', () => {
    const bad = [0x00, 0x09, 0x0a, 0x1b, 0x1f, 0x7f, 0x80, 0x9b, 0x9f, 0x61c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202e, 0x2066, 0x2069];
    for (const cp of bad) expect(findControl(`a${String.fromCodePoint(cp)}b`), cp.toString(16)).toBe(String.fromCodePoint(cp));
    for (const ok of ['plain ascii ~!@#$%^&*()', 'café ünïcödé 日本語 😀', '\u00a0nbsp', 'x\u202fy', '\u2065']) expect(findControl(ok), ok).toBeUndefined();
    // Documents keep their line breaks and tabs, nothing more.
    expect(findControl('a\n\r\tb', true)).toBeUndefined();
    expect(findControl('a\u001bb', true)).toBe('\u001b');
  });

  it('checks every string of a request, however nested, naming its path; bytes are skipped', () => {
    expect(() => checkRequestText({ entry: { hint: 'ok', selectors: [{ type: 'unix', value: 'uid:1' }] }, csr: Buffer.from([0, 27, 0x9b]) })).not.toThrow();
    expect(refusal(() => checkRequestText({ entry: { selectors: [{ type: 'unix', value: 'uid:1' }, { type: 'unix', value: '\u0085' }] } }))).toBe(
      `admin: entry.selectors[1].value contains the control character U+0085; ${tail}`,
    );
    expect(refusal(() => checkRequestText({ patch: { dns_names: { items: ['a', 'b\u2029'] } } }))).toBe(`admin: patch.dns_names.items[1] contains the control character U+2029; ${tail}`);
    expect(refusal(() => checkRequestText({ document: '{\n\t"keys": []\u001b\n}' }))).toBe(`admin: document contains the control character U+001B; ${tail}`);
    expect(() => checkRequestText({ document: '{\n\t"keys": []\r\n}', bootstrap_bundle: 'x\n', relationship: { web_ca_pem: '-----\n' } })).not.toThrow();
    expect(refusal(() => checkRequestText({ trust_domain: 'a\nb' }))).toBe(`admin: trust_domain contains the control character U+000A; ${tail}`);
    let deep: Record<string, unknown> = { v: 'x' };
    for (let i = 0; i < 10; i++) deep = { d: deep };
    expect(refusal(() => checkRequestText(deep))).toBe('admin: d.d.d.d.d.d.d.d is nested too deeply');
  });

  it('escapes them for the terminal, keeping the text readable and JSON valid', () => {
    expect(escapeControls('\u001b[31mred\u0000 \u202egnp.exe\n\u009b')).toBe('\\x1b[31mred\\x00 \\u202egnp.exe\\x0a\\x9b');
    expect(escapeControls('line one\nline two\u0007', true)).toBe('line one\nline two\\x07');
    const value = { hint: '\u001b\u007f\u0085\u202e\u2028 ok', n: 1 };
    const json = escapeJsonControls(JSON.stringify(value, null, 2));
    expect(json).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e\u2028]/);
    expect(JSON.parse(json)).toEqual(value);
  });
});
