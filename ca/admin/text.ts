import { invalid } from '@anchorage/client/errors';
import { CONTROL_CLASS, codePointName, escapeJsonControls, findControl } from '../../common/text.js';

/*
 * The character class is shared with every other check of caller text
 * (selectors, hints, kids) through common/text.ts: one definition. These
 * re-exports keep this module's callers (the CLI, federation) unchanged.
 */
export { codePointName, escapeJsonControls, findControl };

/** Every control and bidirectional formatting character, matched globally (see common/text.ts). */
const CONTROL_ALL = new RegExp(`[${CONTROL_CLASS}]`, 'gu');

/**
 * Admin request fields that carry whole documents (a SPIFFE bundle as JSON,
 * PEM certificates): line breaks and tabs are part of their syntax. Whatever
 * they hold that is shown later (kids, subjects) is checked once parsed.
 */
export const DOCUMENT_FIELDS: ReadonlySet<string> = new Set(['document', 'bootstrap_bundle', 'web_ca_pem']);

/** Objects nested deeper than this are not admin API messages; refusing them bounds the walk. */
const MAX_DEPTH = 8;

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
