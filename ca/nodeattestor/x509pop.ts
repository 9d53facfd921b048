// x509pop: the node proves possession of a key whose certificate chains to
// the operator's CA bundle (`node_attestors.x509pop.ca_bundle_file`). The
// agent sends the chain; the server checks it, then sends a fresh nonce the
// node key must sign. Nothing is spent (the nonce is new each time), so a node
// may attest again; `anchorage agent ban` stops one.
import 'reflect-metadata';
import { randomBytes, verify } from 'node:crypto';
import { KeyUsageFlags, KeyUsagesExtension, SubjectAlternativeNameExtension } from '@peculiar/x509';
import { parseWire, wire, x509popAnswer, x509popPayload, x509popSigned } from '../../common/attestation-wire.js';
import { AnchorageError, isAnchorageError } from '../../common/errors.js';
import type { Selector } from '../../common/selector.js';
import type { Challenge, NodeAttestation, NodeAttestor } from './NodeAttestor.js';
import { parseCertificate, verifyPath, type ParsedCertificate } from './x509-chain.js';

export const X509POP = 'x509pop';

export interface X509PopAttestorOptions {
  /** The CA certificates of `ca_bundle_file`: each is a trust anchor. */
  cas: readonly ParsedCertificate[];
  /** Seconds since the epoch. */
  now: () => number;
}

const refuse = (message: string) => new AnchorageError('permission_denied', `agent api: x509pop: ${message}`);
/** SAN kinds as @peculiar/x509 names them, to the selector names. */
const SAN_KINDS: Readonly<Record<string, string>> = { dns: 'dns', url: 'uri', ip: 'ip', email: 'email' };

/** Server side of x509pop. */
export class X509PopAttestor implements NodeAttestor {
  readonly type = X509POP;
  readonly #opts: X509PopAttestorOptions;

  constructor(opts: X509PopAttestorOptions) {
    this.#opts = opts;
  }

  precheck(payload: Buffer): void {
    this.#chain(payload);
  }

  #chain(payload: Buffer): ParsedCertificate[] {
    const p = parseWire(x509popPayload, payload, 'agent api: x509pop: payload');
    return p.chain.map((der, i) => parseCertificate(der, `agent api: x509pop: chain[${i}]`));
  }

  async attest(payload: Buffer, challenge: Challenge): Promise<NodeAttestation> {
    const [leaf, ...intermediates] = this.#chain(payload);
    let path: ParsedCertificate[];
    try {
      path = verifyPath(leaf!, intermediates, this.#opts.cas, this.#opts.now() * 1000, {
        leaf: 'node certificate',
        untrusted: 'node certificate does not chain to a CA in ca_bundle_file',
      });
    } catch (err) {
      throw refuse(isAnchorageError(err) ? err.message : String(err));
    }
    const ku = leaf!.pec.getExtension(KeyUsagesExtension);
    if (ku && (ku.usages & KeyUsageFlags.digitalSignature) === 0) throw refuse('the node certificate\'s keyUsage does not allow digitalSignature');
    const nonce = randomBytes(32);
    const answerBytes = await challenge(wire({ nonce }));
    let signature: Buffer;
    try {
      signature = parseWire(x509popAnswer, answerBytes, 'challenge response').signature;
    } catch (err) {
      throw refuse(isAnchorageError(err) ? err.message : 'malformed challenge response');
    }
    const key = leaf!.node.publicKey;
    // Ed25519/Ed448 sign the message itself; RSA and ECDSA sign its SHA-256.
    const hash = key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256';
    let ok = false;
    try {
      ok = verify(hash, x509popSigned(nonce), { key, dsaEncoding: 'der' }, signature);
    } catch {
      ok = false;
    }
    if (!ok) throw refuse('the signature over the nonce does not verify with the node certificate\'s key');

    const selectors: Selector[] = [];
    for (const cn of leaf!.pec.subjectName.getField('CN')) selectors.push({ type: X509POP, value: `subject:cn:${cn}` });
    for (const ca of path.slice(1)) selectors.push({ type: X509POP, value: `ca:fingerprint:${ca.fingerprint}` });
    const sanExt = leaf!.pec.getExtension(SubjectAlternativeNameExtension);
    for (const n of sanExt?.names.items ?? []) {
      const kind = SAN_KINDS[n.type];
      if (kind) selectors.push({ type: X509POP, value: `san:${kind}:${n.value}` });
    }
    return { agentIdPath: `/anchorage/agent/${X509POP}/${leaf!.fingerprint}`, selectors };
  }
}
