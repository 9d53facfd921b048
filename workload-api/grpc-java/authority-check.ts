// Which `:authority` values Node's HTTP/2 server (nghttp2) accepts, and what
// replaces one it would refuse: the check the whole workaround exists to get
// around (see route.ts).
import type { HeaderField } from './hpack.js';

/** The octets nghttp2's authority check (nghttp2_check_authority) lets through. */
const AUTHORITY_OCTETS = (() => {
  const ok = new Uint8Array(256);
  for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@[]%") ok[c.charCodeAt(0)] = 1;
  return ok;
})();

/** Whether Node's HTTP/2 server (nghttp2) accepts `value` as `:authority`. */
export function isAcceptableAuthority(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c > 0xff || AUTHORITY_OCTETS[c] !== 1) return false;
  }
  return true;
}

/** What an unacceptable `:authority` becomes. */
export const REPLACEMENT_AUTHORITY = 'localhost';

/** The block's fields with an unacceptable `:authority` replaced; `changed` tells whether one was. */
export function fixAuthority(fields: HeaderField[]): { fields: HeaderField[]; changed: boolean } {
  let changed = false;
  const out = fields.map((f) => {
    if (f.name !== ':authority' || isAcceptableAuthority(f.value)) return f;
    changed = true;
    return { ...f, value: REPLACEMENT_AUTHORITY };
  });
  return { fields: out, changed };
}
