import { invalid } from '../../common/errors.js';

/**
 * Characters that change how text is shown rather than what it says: C0
 * controls (NUL, ESC starting terminal escape sequences...), DEL, C1 controls
 * (U+009B is a one-character CSI on some terminals), the line and paragraph
 * separators, and the bidirectional formatting characters (marks, embeddings,
 * overrides, isolates) that make `moc.elpmaxe` read as `example.com`. No
 * identifier, selector, DNS name, URL or hint needs any of them, and each can
 * make `anchorage entry list` show an operator something other than what is
 * stored.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/u;
const CONTROL_ALL = new RegExp(CONTROL.source, 'gu');
/** The same, less the line breaks and tab that PEM and JSON documents legitimately hold. */
const CONTROL_IN_DOCUMENT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/u;

/**
 * Admin request fields that carry whole documents (a SPIFFE bundle as JSON,
 * PEM certificates): line breaks and tabs are part of their syntax. Whatever
 * they hold that is shown later (kids, subjects) is checked once parsed.
 */
export const DOCUMENT_FIELDS: ReadonlySet<string> = new Set(['document', 'bootstrap_bundle', 'web_ca_pem']);

/** Objects nested deeper than this are not admin API messages; refusing them bounds the walk. */
const MAX_DEPTH = 8;

/** `U+001B`: how a character is named in messages, never the character itself. */
export function codePointName(c: string): string {
  return `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The first control or bidirectional formatting character of `s`, if any. */
export function findControl(s: string, document = false): string | undefined {
  return (document ? CONTROL_IN_DOCUMENT : CONTROL).exec(s)?.[0];
}

/** The refusal for `field`; `module` prefixes it (`admin`, `entry`, `federation`). */
export function controlMessage(module: string, field: string, c: string): string {
  return `${module}: ${field} contains the control character ${codePointName(c)}; control and bidirectional formatting characters are not accepted`;
}

/** Refuses a string holding a control or bidirectional formatting character, naming the field. */
export function checkPrintable(value: string, field: string, module: string): string {
  const c = findControl(value);
  if (c !== undefined) throw invalid(controlMessage(module, field, c));
  return value;
}

/**
 * Checks every string of an admin API request, at any depth, so that no
 * field (present or added later) lets such characters into the datastore or
 * back out through an error message. Fields are named by their path in the
 * request (`entry.selectors[0].value`). Bytes (CSRs) are not text and are
 * skipped.
 */
export function checkRequestText(request: unknown): void {
  walk(request, '', 0, false);
}

function walk(value: unknown, path: string, depth: number, document: boolean): void {
  if (typeof value === 'string') {
    const c = findControl(value, document);
    if (c !== undefined) throw invalid(controlMessage('admin', path || 'request', c));
    return;
  }
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return;
  if (depth >= MAX_DEPTH) throw invalid(`admin: ${path || 'request'} is nested too deeply`);
  if (Array.isArray(value)) {
    value.forEach((v, i) => walk(v, `${path}[${i}]`, depth + 1, document));
    return;
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    walk(v, path ? `${path}.${k}` : k, depth + 1, DOCUMENT_FIELDS.has(k));
  }
}

/**
 * Makes every control and bidirectional formatting character of `s` visible
 * as an escape (`\x1b`, `\u202e`), for terminal output: data stored by an
 * older version, or sent by a peer, must not drive the operator's terminal.
 * With `keepNewlines`, `\n` passes (for text the CLI composed itself, whose
 * data parts were escaped already).
 */
export function escapeControls(s: string, keepNewlines = false): string {
  return s.replace(CONTROL_ALL, (c) => {
    if (keepNewlines && c === '\n') return c;
    const cp = c.codePointAt(0) ?? 0;
    return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u${cp.toString(16).padStart(4, '0')}`;
  });
}

/** JSON text with the characters JSON.stringify leaves raw (DEL, C1, bidi, U+2028/2029) as \u escapes: same value, safe to print. */
export function escapeJsonControls(json: string): string {
  // C0 characters are escaped by JSON.stringify inside strings already; outside them they are its own layout.
  return json.replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/gu, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}
