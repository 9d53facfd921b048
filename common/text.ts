/**
 * Text that reaches an operator's terminal or a log: the one definition of
 * the characters no identifier, selector or hint may hold, and the one way
 * to quote caller input inside an error message.
 */

/**
 * The character class (without brackets) of characters that change how text
 * is shown rather than what it says: C0 controls (NUL, ESC starting terminal
 * escape sequences...), DEL, C1 controls (U+009B is a one-character CSI on
 * some terminals), the Arabic letter mark, the line and paragraph separators,
 * and the bidirectional formatting characters (marks, embeddings, overrides,
 * isolates) that make `moc.elpmaxe` read as `example.com`.
 */
export const CONTROL_CLASS = '\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069';

const CONTROL = new RegExp(`[${CONTROL_CLASS}]`, 'u');
/** The same less the line breaks and tab that PEM and JSON documents legitimately hold. */
const CONTROL_IN_DOCUMENT = new RegExp(`[${CONTROL_CLASS.replace('\\u0000-\\u001f', '\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f')}]`, 'u');
/** What JSON.stringify leaves raw inside strings: the class less C0, which it escapes itself. */
const CONTROL_NOT_ESCAPED_BY_JSON = new RegExp(`[${CONTROL_CLASS.replace('\\u0000-\\u001f', '')}]`, 'gu');

/** A UTF-16 surrogate without its other half: not a character, and not encodable as UTF-8. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** `U+001B`: how a character is named in messages, never the character itself. */
export function codePointName(c: string): string {
  return `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * The first control or bidirectional formatting character of `s`, if any.
 * With `document`, line breaks and tabs are allowed.
 */
export function findControl(s: string, document = false): string | undefined {
  return (document ? CONTROL_IN_DOCUMENT : CONTROL).exec(s)?.[0];
}

/** The first lone surrogate of `s` (a string that is not well-formed UTF-16), if any. */
export function findLoneSurrogate(s: string): string | undefined {
  return LONE_SURROGATE.exec(s)?.[0];
}

/** JSON text with the characters JSON.stringify leaves raw (DEL, C1, bidi, U+2028/2029) as \u escapes: same value, safe to print. */
export function escapeJsonControls(json: string): string {
  return json.replace(CONTROL_NOT_ESCAPED_BY_JSON, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

/** How many UTF-16 units of caller input an error message quotes. */
export const QUOTE_MAX = 64;

/**
 * Caller input as it may appear in an error message: JSON-quoted (so a
 * newline or ESC shows as `\n`, `\u001b`, and lone surrogates as escapes),
 * DEL, C1 and bidi characters escaped too, and cut at `max` UTF-16 units
 * with `...` after the closing quote when longer: one printable line of
 * bounded length whatever was sent (a 1 MB selector must not give a 1 MB
 * message).
 */
export function quote(s: string, max = QUOTE_MAX): string {
  if (s.length <= max) return escapeJsonControls(JSON.stringify(s));
  let head = s.slice(0, max);
  // Do not split a surrogate pair into a lone half.
  const last = head.charCodeAt(head.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) head = head.slice(0, -1);
  return `${escapeJsonControls(JSON.stringify(head))}...`;
}

/**
 * Text already checked to be printable (a parsed SPIFFE ID, a trust domain
 * name) as it may appear in an error message: unchanged up to `max` UTF-16
 * units, cut with `...` beyond, so that a 2,048-byte ID does not make a
 * 2 KB message. Unchecked input goes through {@link quote} instead.
 */
export function clip(s: string, max = QUOTE_MAX): string {
  return s.length <= max ? s : `${s.slice(0, max)}...`;
}
