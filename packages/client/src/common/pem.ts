import { invalid } from './errors.js';

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)-----END \1-----/g;

/** Encodes DER as one PEM block with 64-column lines. */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

/**
 * Extracts every PEM block with the given label, in order. Text outside the
 * blocks (comments, `openssl x509 -text` dumps) is ignored, but a file with
 * no block at all is an error: an empty chain must never be mistaken for one.
 */
export function fromPem(text: string, label: string, what = 'pem'): Buffer[] {
  const out: Buffer[] = [];
  for (const m of text.matchAll(BLOCK)) {
    if (m[1] === label) out.push(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'));
  }
  if (out.length === 0) throw invalid(`${what}: no "${label}" PEM block found`);
  return out;
}
