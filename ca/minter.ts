import { randomBytes } from 'node:crypto';
import { AnchorageError, invalid } from '@anchorage/client/errors';
import type { AuditActor, AuditEvent, AuditSink } from './audit/event.js';
import { formatDuration } from '../common/duration.js';
import type { SpiffeId } from '@anchorage/client/spiffe/id';
import type { CaManager } from './manager.js';
import type { KeyHandle } from './keymanager/KeyManager.js';
import { resultOf } from '../common/metrics-http.js';
import type { MintObserver } from './metrics.js';
import { BACKDATE_SECONDS } from './root.js';
import { randomSerial } from './x509/cert.js';
import { InlineCsrVerifier, type CsrVerifier } from './x509/csr-pool.js';

export interface MintedX509Svid {
  /** DER, leaf first, then the intermediates; never the trust anchor. */
  chain: Uint8Array[];
  /** Unix seconds. */
  notAfter: number;
  /** The leaf's serial number, lowercase hex. */
  serial: string;
}

export interface MintedJwtSvid {
  token: string;
  /** Unix seconds. */
  expiresAt: number;
  /** The `jti` claim: 128 random bits, base64url. */
  jti: string;
}

export interface JwtMintRequest {
  spiffeId: SpiffeId;
  audience: string[];
  ttl?: number;
  capToCa?: boolean;
  /** The agent that asked, for the audit record. */
  agent?: string;
  /** The admin socket caller that asked, for the audit record. */
  actor?: AuditActor;
}

export interface X509MintRequest {
  spiffeId: SpiffeId;
  /** DER SubjectPublicKeyInfo of the workload's key. */
  spki: Uint8Array;
  dnsNames?: string[];
  /** Seconds. Absent or 0: the server default, capped at the CA's notAfter. Given: must fit in the CA's life. */
  ttl?: number;
  /** A ttl that comes from an entry, not from the caller: cap it at the CA like a default instead of refusing it. */
  capToCa?: boolean;
  /** The agent that asked, for the audit record. */
  agent?: string;
  /** The admin socket caller that asked, for the audit record. */
  actor?: AuditActor;
}

export interface MinterOptions {
  ca: CaManager;
  /** Default X509-SVID lifetime, seconds. */
  x509SvidTtl: number;
  /** Default JWT-SVID lifetime, seconds. */
  jwtSvidTtl: number;
  now?: () => number;
  /** Proof-of-possession check for CSRs; the server passes a worker pool. Default: inline. */
  csrVerifier?: CsrVerifier;
  /** Told the result and duration of every mint (ca/metrics.ts); absent, nothing is measured. */
  metrics?: MintObserver;
  /**
   * Every SVID issued is recorded here, and handed out only once the record
   * is stored (ca/audit/log.ts); a failed record fails the mint.
   */
  audit?: AuditSink;
}

/**
 * Signs SVIDs with the active CA. This is the hot path: the leaf TBSCertificate
 * comes from a precomputed template (LeafEncoder), the only asynchronous step
 * is the HSM signature.
 */
export class Minter {
  private readonly ca: CaManager;
  private readonly opts: MinterOptions;
  private readonly now: () => number;
  private readonly csrs: CsrVerifier;
  /**
   * Smoothed duration of recent signatures, in ms, queueing for a session
   * included: how long a mint waits for its signature anyway. Its audit
   * record may take half of that to be committed (group commit with other
   * records) without delaying the mint.
   */
  private signMs = 0;

  constructor(opts: MinterOptions) {
    this.ca = opts.ca;
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.csrs = opts.csrVerifier ?? new InlineCsrVerifier();
  }

  /** Verifies a CSR's self-signature (proof of possession) and returns its public key. */
  async verifyCsr(csrDer: Uint8Array): Promise<Uint8Array> {
    return (await this.csrs.verify(csrDer)).spki;
  }

  /** Verifies the CSR's self-signature (proof of possession), then mints for its public key. */
  mintX509FromCsr(csrDer: Uint8Array, req: Omit<X509MintRequest, 'spki'>): Promise<MintedX509Svid> {
    return this.observed('x509', async () => {
      this.checkId(req.spiffeId, 'x509svid');
      const csr = await this.csrs.verify(csrDer);
      return this.signX509({ ...req, spki: csr.spki });
    });
  }

  mintX509(req: X509MintRequest): Promise<MintedX509Svid> {
    return this.observed('x509', () => this.signX509(req));
  }

  mintJwt(req: JwtMintRequest): Promise<MintedJwtSvid> {
    return this.observed('jwt', () => this.signJwt(req));
  }

  /** Runs one mint, telling the observer its result and duration. */
  private async observed<T>(kind: 'x509' | 'jwt', mint: () => Promise<T>): Promise<T> {
    const observer = this.opts.metrics;
    if (observer === undefined) return mint();
    const t0 = performance.now();
    try {
      const out = await mint();
      observer.minted(kind, 'success', (performance.now() - t0) / 1000);
      return out;
    } catch (err) {
      observer.minted(kind, resultOf(err), (performance.now() - t0) / 1000);
      throw err;
    }
  }

  private async signX509(req: X509MintRequest): Promise<MintedX509Svid> {
    this.checkId(req.spiffeId, 'x509svid');
    const ca = this.ca.activeX509();
    const now = Math.floor(this.now() / 1000);
    const notAfter = this.lifetime(now, ca.notAfter, req.ttl, this.opts.x509SvidTtl, 'x509svid', req.capToCa);
    const serial = randomSerial();
    const tbs = ca.encoder.tbs({
      serial,
      notBefore: new Date((now - BACKDATE_SECONDS) * 1000),
      notAfter: new Date(notAfter * 1000),
      spiffeId: req.spiffeId.toString(),
      dnsNames: req.dnsNames ?? [],
      spki: req.spki,
    });
    const serialHex = serial.toString('hex');
    // The record is written while the HSM signs (everything in it is known
    // before the signature), and the SVID is handed out only once both are
    // done: the commit's latency hides behind the signature's.
    const [signature] = await Promise.all([
      this.sign(ca.key, tbs),
      this.recordIssued({
        type: 'x509_svid.issued',
        spiffeId: req.spiffeId.toString(),
        serial: serialHex,
        expiresAt: notAfter,
        authority: ca.row.id,
        ...(req.agent !== undefined && { agent: req.agent }),
        ...(req.actor !== undefined && { actor: req.actor }),
      }),
    ]);
    const leaf = ca.encoder.assemble(tbs, signature);
    return { chain: [leaf, ...ca.chain], notAfter, serial: serialHex };
  }

  private async signJwt(req: JwtMintRequest): Promise<MintedJwtSvid> {
    this.checkId(req.spiffeId, 'jwtsvid');
    if (req.audience.length === 0) throw invalid('jwtsvid: at least one audience is required');
    for (const aud of req.audience) {
      if (aud.trim() === '' || aud.length > 1024) throw invalid(`jwtsvid: audience "${aud.slice(0, 40)}" must be a non-empty string of at most 1024 characters`);
    }
    const key = this.ca.activeJwt();
    const now = Math.floor(this.now() / 1000);
    const exp = this.lifetime(now, key.notAfter, req.ttl, this.opts.jwtSvidTtl, 'jwtsvid', req.capToCa);
    const jti = randomBytes(16).toString('base64url');
    const payload = Buffer.from(
      JSON.stringify({ sub: req.spiffeId.toString(), aud: req.audience, exp, iat: now, jti }),
    ).toString('base64url');
    const signingInput = `${key.headerB64}.${payload}`;
    // Recorded while the HSM signs, as for X509-SVIDs.
    const [signature] = await Promise.all([
      this.sign(key.key, Buffer.from(signingInput)),
      this.recordIssued({
        type: 'jwt_svid.issued',
        spiffeId: req.spiffeId.toString(),
        jti,
        expiresAt: exp,
        authority: key.row.id,
        ...(req.agent !== undefined && { agent: req.agent }),
        ...(req.actor !== undefined && { actor: req.actor }),
      }),
    ]);
    return { token: `${signingInput}.${Buffer.from(signature).toString('base64url')}`, expiresAt: exp, jti };
  }

  /**
   * Records an SVID about to be issued. If the signature then fails, the
   * record stays (the log is append-only) and nothing is handed out: the log
   * may name an SVID that was never issued, never the other way round.
   */
  private recordIssued(event: AuditEvent): Promise<void> {
    return this.opts.audit ? this.opts.audit.record(event, { withinMs: this.signMs / 2 }) : Promise.resolve();
  }

  /** Signs with the HSM key; with an audit log, keeps the smoothed signature time up to date. */
  private sign(key: KeyHandle, data: Uint8Array): Promise<Uint8Array> {
    if (this.opts.audit === undefined) return key.sign(data);
    const t0 = performance.now();
    return key.sign(data).then((sig) => {
      this.signMs += (performance.now() - t0 - this.signMs) / 16;
      return sig;
    });
  }

  /** SVIDs never outlive their CA: a default lifetime is capped, an explicit one that does not fit is refused. */
  private lifetime(now: number, caNotAfter: number, requested: number | undefined, fallback: number, what: string, cap = false): number {
    if (requested !== undefined && requested !== 0 && cap) fallback = requested;
    else if (requested !== undefined && requested !== 0) {
      if (!Number.isInteger(requested) || requested < 0) throw invalid(`${what}: ttl must be a positive whole number of seconds`);
      if (now + requested > caNotAfter) {
        throw invalid(
          `${what}: ttl ${formatDuration(requested)} goes beyond the CA, which expires in ${formatDuration(caNotAfter - now)}`,
        );
      }
      return now + requested;
    }
    const notAfter = Math.min(now + fallback, caNotAfter);
    if (notAfter <= now) throw new AnchorageError('unavailable', `${what}: the active CA has expired; rotation has not caught up`);
    return notAfter;
  }

  private checkId(id: SpiffeId, what: string): void {
    if (!id.memberOf(this.ca.trustDomain)) {
      throw invalid(`${what}: spiffe id ${id} is not in trust domain ${this.ca.trustDomain.name}`);
    }
    if (id.isTrustDomainId()) throw invalid(`${what}: spiffe id ${id} has no path; an SVID must name a workload`);
  }
}
