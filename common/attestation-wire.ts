// The messages of the tpm and x509pop node attestors, inside the AttestAgent
// stream's payload, challenge and challenge_response bytes: JSON objects whose
// binary fields are base64. One definition for both sides (ca/nodeattestor/
// reads them, node-agent/nodeattestor/ writes them). The agent API already
// bounds every message's size; these schemas bound the fields.
import { z } from 'zod';
import { formatIssues } from './config-file.js';
import { invalid } from './errors.js';

const b64 = (max: number) =>
  z
    .string()
    .max(Math.ceil(max / 3) * 4)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')
    .transform((s) => Buffer.from(s, 'base64'));

/** A PCR bank and indices, as in the server's `node_attestors.tpm.pcrs`. */
export const pcrSelectionWire = z
  .object({ bank: z.enum(['sha1', 'sha256', 'sha384', 'sha512']), indices: z.array(z.number().int().min(0).max(23)).min(1).max(24) })
  .strict();
export type PcrSelectionWire = z.output<typeof pcrSelectionWire>;

/** tpm payload: the EK (TPM2B_PUBLIC, and its certificate when the TPM has one) and the AK (TPM2B_PUBLIC). */
export const tpmPayload = z.object({ ek_pub: b64(1024), ek_cert: b64(8192).optional(), ak_pub: b64(1024) }).strict();
/** tpm challenge: the credential to activate, a nonce to quote over and the PCRs to quote. */
export const tpmChallenge = z
  .object({ credential_blob: b64(1024), encrypted_secret: b64(1024), nonce: b64(64), pcrs: z.array(pcrSelectionWire).min(1).max(4) })
  .strict();
/** tpm answer: the activated secret, the quote (TPMS_ATTEST), its signature (TPMT_SIGNATURE) and the quoted PCR values in order. */
export const tpmAnswer = z.object({ secret: b64(64), quote: b64(1024), signature: b64(1024), pcr_values: b64(24 * 4 * 64) }).strict();

/** x509pop payload: the node's certificate chain, DER, leaf first. */
export const x509popPayload = z.object({ chain: z.array(b64(16 * 1024)).min(1).max(8) }).strict();
/** x509pop challenge: a nonce the node key signs. */
export const x509popChallenge = z.object({ nonce: b64(64) }).strict();
/** x509pop answer: the node key's signature over {@link x509popSigned}(nonce). */
export const x509popAnswer = z.object({ signature: b64(1024) }).strict();

/** What the x509pop node key signs: a fixed context, then the nonce, so the signature serves no other protocol. */
export function x509popSigned(nonce: Buffer): Buffer {
  return Buffer.concat([Buffer.from('anchorage x509pop v1\0', 'latin1'), nonce]);
}

/** Parses one message; `code` decides whether a malformed one is the caller's mistake or failed evidence. */
export function parseWire<T extends z.ZodType>(schema: T, bytes: Buffer, what: string): z.output<T> {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalid(`${what} is not JSON`);
  }
  const r = schema.safeParse(doc);
  if (!r.success) throw invalid(formatIssues(what, r.error));
  return r.data;
}

/** JSON bytes of a message, binary fields in base64. */
export function wire(msg: Record<string, unknown>): Buffer {
  // Buffer.toJSON runs before a replacer sees the value: turn its {type, data} form into base64.
  return Buffer.from(
    JSON.stringify(msg, (_k, v: unknown) => {
      const b = v as { type?: unknown; data?: unknown } | null;
      return b !== null && typeof b === 'object' && b.type === 'Buffer' && Array.isArray(b.data) ? Buffer.from(b.data as number[]).toString('base64') : v;
    }),
  );
}
