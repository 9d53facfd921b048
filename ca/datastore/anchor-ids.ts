import { createHash } from 'node:crypto';

/**
 * The anchors of a SPIFFE bundle document, as AnchorSighting (DataStore.ts) names
 * them. The document was checked before it was stored; what does not parse
 * here names nothing.
 */
export function anchorIds(document: string): string[] {
  let keys: unknown;
  try {
    keys = (JSON.parse(document) as { keys?: unknown }).keys;
  } catch {
    return [];
  }
  if (!Array.isArray(keys)) return [];
  const out: string[] = [];
  for (const k of keys as Array<Record<string, unknown>>) {
    if (k?.use === 'x509-svid' && Array.isArray(k.x5c) && typeof k.x5c[0] === 'string') {
      out.push(`x509:${createHash('sha256').update(Buffer.from(k.x5c[0], 'base64')).digest('hex')}`);
    } else if (k?.use === 'jwt-svid' && typeof k.kid === 'string') {
      out.push(`jwt:${k.kid}`);
    }
  }
  return out;
}
