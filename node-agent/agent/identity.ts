// The agent's own identity: the record it holds, the checks on an agent SVID
// the server returns (attestation and renewal), and the bootstrap trust
// bundle file. Pure functions of their
// inputs; the NodeAgent class (../agent.ts) owns the state and the lifecycle.
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import { SpiffeBundle, X509Bundle } from '@anchorage/client/spiffe/bundle';
import type { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';

/** The agent's own identity at the server. */
export interface AgentIdentity {
  spiffeId: SpiffeId;
  keyPem: string;
  keyPkcs8: Buffer;
  chain: Uint8Array[];
  notBefore: number;
  notAfter: number;
  /** Half-life: when RenewAgent is called. */
  renewAt: number;
}

/** When an SVID valid from `from` to `notAfter` (Unix seconds) is renewed. */
export function halfLife(from: number, notAfter: number): number {
  return from + Math.floor((notAfter - from) / 2);
}

/** The SPKI DER of a certificate's public key. */
export function spkiOf(cert: X509Certificate): Buffer {
  return cert.publicKey.export({ type: 'spki', format: 'der' });
}

/** The SPKI DER of a private key's public half. */
export function privateKeySpki(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' });
}


/**
 * Checks an agent SVID from the server: our key, an agent ID of our trust
 * domain (`ownTd`), a chain to the bundle. `nowMs` is the agent's clock
 * (milliseconds since the epoch).
 */
export function checkAgentSvid(
  ownTd: TrustDomain,
  nowMs: () => number,
  chain: Uint8Array[],
  authorities: X509Bundle,
  ourSpki: Buffer,
): Omit<AgentIdentity, 'keyPem' | 'keyPkcs8'> {
  if (chain.length === 0) throw new AnchorageError('internal', 'agent: the server sent an empty agent svid chain');
  let verified;
  try {
    verified = verifyX509Svid(chain, (td) => (td.equals(ownTd) ? authorities : undefined), new Date(nowMs()));
  } catch (err) {
    throw new AnchorageError('internal', `agent: the agent svid from the server does not verify: ${errorMessage(err)}`);
  }
  const leaf = verified.chain[0]!;
  if (!spkiOf(leaf).equals(ourSpki)) throw new AnchorageError('internal', 'agent: the agent svid from the server is not for our key');
  if (!verified.spiffeId.path.startsWith('/anchorage/agent/')) {
    throw new AnchorageError('internal', `agent: the server issued ${verified.spiffeId.toString()}, which is not an agent ID`);
  }
  const notBefore = Math.floor(Date.parse(leaf.validFrom) / 1000);
  const notAfter = Math.floor(Date.parse(leaf.validTo) / 1000);
  return { spiffeId: verified.spiffeId, chain, notBefore, notAfter, renewAt: halfLife(Math.max(notBefore, Math.floor(nowMs() / 1000)), notAfter) };
}

/** The bootstrap trust bundle: a SPIFFE bundle document or PEM certificates. */
export function readTrustBundleFile(path: string, td: TrustDomain): X509Bundle {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AnchorageError('failed_precondition', `agent: cannot read trust_bundle_file ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
  let bundle: X509Bundle;
  try {
    bundle = text.trimStart().startsWith('{') ? SpiffeBundle.parse(td, text).x509 : X509Bundle.parsePem(td, text);
  } catch (err) {
    throw new AnchorageError('failed_precondition', `agent: trust_bundle_file ${path}: ${errorMessage(err)}`);
  }
  if (bundle.size === 0) throw new AnchorageError('failed_precondition', `agent: trust_bundle_file ${path} holds no X.509 authorities`);
  return bundle;
}
