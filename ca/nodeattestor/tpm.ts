// tpm: node attestation rooted in a TPM 2.0. The agent sends its EK (and the
// EK certificate from NV 0x01c00002) and an AK it made under the EK. The
// server trusts the EK by its certificate chain (`ek_ca_dir`) or by the hash
// of its public key (`ek_hashes`); binds the AK to that EK by credential
// activation (MakeCredential here, ActivateCredential in the agent's TPM);
// and reads the node's PCRs from a quote the AK signs over a fresh nonce.
// Nothing is spent, so a node may attest again (to the same ID) whenever it
// needs: `anchorage agent ban` is how an operator stops one.
import { constants, createHash, randomBytes, timingSafeEqual, verify } from 'node:crypto';
import { parseWire, tpmAnswer, tpmPayload, wire, type PcrSelectionWire } from '../../common/attestation-wire.js';
import { AnchorageError, isAnchorageError } from '../../common/errors.js';
import type { Selector } from '../../common/selector.js';
import { parseQuote, parseSignature, parseTpm2bPublic, PCR_BANKS, TPM_ALG, TPM_HASHES, TPMA, type TpmPublic } from '../../common/tpm2.js';
import type { Challenge, NodeAttestation, NodeAttestor } from './NodeAttestor.js';
import { makeCredential } from './tpm-credential.js';
import { parseCertificate, verifyPath, type ParsedCertificate } from './x509-chain.js';

export const TPM = 'tpm';

/** The AK must be a TPM-made restricted signing key that cannot leave its TPM: only then is a quote it signs the TPM's word. */
const AK_REQUIRED = TPMA.fixedTPM | TPMA.fixedParent | TPMA.sensitiveDataOrigin | TPMA.restricted | TPMA.sign;

export interface TpmAttestorOptions {
  /** Manufacturer CA certificates (`ek_ca_dir`): every one is a trust anchor for EK certificates. */
  ekCas: readonly ParsedCertificate[];
  /** SHA-256 (hex) of EK public keys (DER SubjectPublicKeyInfo) trusted without a certificate (`ek_hashes`). */
  ekHashes: ReadonlySet<string>;
  /** The PCRs every quote must cover (`pcrs`). */
  pcrs: readonly PcrSelectionWire[];
  /** Seconds since the epoch. */
  now: () => number;
}

const refuse = (message: string) => new AnchorageError('permission_denied', `agent api: tpm: ${message}`);

/** Server side of tpm. */
export class TpmAttestor implements NodeAttestor {
  readonly type = TPM;
  readonly #opts: TpmAttestorOptions;

  constructor(opts: TpmAttestorOptions) {
    this.#opts = opts;
  }

  precheck(payload: Buffer): void {
    this.#payload(payload);
  }

  #payload(payload: Buffer) {
    const p = parseWire(tpmPayload, payload, 'agent api: tpm: payload');
    return { ek: parseTpm2bPublic(p.ek_pub, 'EK public area'), ak: parseTpm2bPublic(p.ak_pub, 'AK public area'), ekCert: p.ek_cert };
  }

  async attest(payload: Buffer, challenge: Challenge): Promise<NodeAttestation> {
    const { ek, ak, ekCert } = this.#payload(payload);
    const ekHash = createHash('sha256').update(ek.spki).digest('hex');
    const issuer = this.#trustEk(ek, ekHash, ekCert);
    if ((ak.attributes & AK_REQUIRED) !== AK_REQUIRED || ak.attributes & TPMA.decrypt) {
      throw refuse('the AK is not a restricted signing key fixed to its TPM');
    }

    const secret = randomBytes(32);
    const nonce = randomBytes(32);
    const cred = makeCredential(ek, ak.name, secret);
    const answerBytes = await challenge(
      wire({ credential_blob: cred.credentialBlob, encrypted_secret: cred.encryptedSecret, nonce, pcrs: this.#opts.pcrs }),
    );
    let answer;
    try {
      answer = parseWire(tpmAnswer, answerBytes, 'challenge response');
    } catch (err) {
      throw refuse(isAnchorageError(err) ? err.message : 'malformed challenge response');
    }
    if (answer.secret.length !== secret.length || !timingSafeEqual(answer.secret, secret)) {
      throw refuse('credential activation failed: the AK is not in the TPM that holds this EK');
    }
    const pcrs = this.#checkQuote(ak, nonce, answer.quote, answer.signature, answer.pcr_values);

    const selectors: Selector[] = [{ type: TPM, value: `ek_pub_hash:${ekHash}` }];
    if (issuer) selectors.push({ type: TPM, value: `ek_ca:${issuer}` });
    for (const p of pcrs) selectors.push({ type: TPM, value: `pcr:${p.bank}:${p.index}:${p.value}` });
    return { agentIdPath: `/anchorage/agent/${TPM}/${ekHash}`, selectors };
  }

  /** Accepts the EK by hash or by certificate; returns the issuing CA's fingerprint when a certificate chained. */
  #trustEk(ek: TpmPublic, ekHash: string, certDer: Buffer | undefined): string | undefined {
    if (certDer === undefined) {
      if (this.#opts.ekHashes.has(ekHash)) return undefined;
      throw refuse(`EK ${ekHash} has no certificate and is not in ek_hashes`);
    }
    let cert: ParsedCertificate;
    try {
      cert = parseCertificate(certDer, 'EK certificate');
    } catch (err) {
      throw refuse(isAnchorageError(err) ? err.message : 'EK certificate is malformed');
    }
    if (!Buffer.from(cert.node.publicKey.export({ type: 'spki', format: 'der' })).equals(ek.spki)) {
      throw refuse('the EK certificate is not for the EK the agent sent');
    }
    try {
      const path = verifyPath(cert, [], this.#opts.ekCas, this.#opts.now() * 1000, {
        leaf: 'EK certificate',
        untrusted: 'EK certificate does not chain to a CA in ek_ca_dir',
      });
      return path[1]!.fingerprint;
    } catch (err) {
      if (this.#opts.ekHashes.has(ekHash)) return undefined;
      throw refuse(isAnchorageError(err) ? err.message : String(err));
    }
  }

  /** Checks the quote against the nonce, the AK and the configured PCRs; returns the quoted PCR values. */
  #checkQuote(ak: TpmPublic, nonce: Buffer, quoteBytes: Buffer, sigBytes: Buffer, values: Buffer) {
    let quote;
    let sig;
    try {
      quote = parseQuote(quoteBytes);
      sig = parseSignature(sigBytes);
    } catch (err) {
      throw refuse(isAnchorageError(err) ? err.message : 'malformed quote');
    }
    if (!quote.extraData.equals(nonce)) throw refuse('the quote is not over this attestation\'s nonce (stale or replayed)');
    const hash = TPM_HASHES.get(sig.hashAlg);
    if (!hash || sig.hashAlg === TPM_ALG.SHA1) throw refuse(`the quote is signed with hash 0x${sig.hashAlg.toString(16)} (need sha256 or stronger)`);
    const keyOk = sig.sigAlg === TPM_ALG.ECDSA ? ak.type === 'ecc' : ak.type === 'rsa';
    const padding = sig.sigAlg === TPM_ALG.RSAPSS ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING;
    const key = ak.type === 'rsa' ? { key: ak.key, padding, saltLength: constants.RSA_PSS_SALTLEN_AUTO } : { key: ak.key, dsaEncoding: 'der' as const };
    if (!keyOk || !verify(hash.name, quoteBytes, key, sig.signature)) throw refuse('the quote signature does not verify with the AK');

    const want = this.#opts.pcrs;
    const same =
      quote.selections.length === want.length &&
      quote.selections.every((s, i) => s.hashAlg === PCR_BANKS[want[i]!.bank] && s.indices.join(',') === want[i]!.indices.join(','));
    if (!same) throw refuse('the quote does not cover the PCRs this server asks for');
    const out: { bank: string; index: number; value: string }[] = [];
    let off = 0;
    for (const s of want) {
      const size = TPM_HASHES.get(PCR_BANKS[s.bank]!)!.size;
      for (const index of s.indices) {
        if (off + size > values.length) throw refuse('fewer PCR values than the quote covers');
        out.push({ bank: s.bank, index, value: values.subarray(off, off + size).toString('hex') });
        off += size;
      }
    }
    if (off !== values.length) throw refuse('more PCR values than the quote covers');
    if (!createHash(hash.name).update(values).digest().equals(quote.pcrDigest)) {
      throw refuse('the PCR values do not match the quote\'s PCR digest');
    }
    return out;
  }
}

/** `ek_hashes` entries are SHA-256 hex; exported for the config. */
export const EK_HASH = /^[0-9a-f]{64}$/;

