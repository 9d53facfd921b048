import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/log.js';
import { toPem } from '@anchorage/client/pem';
import { SpiffeId } from '@anchorage/client/spiffe/id';
import type { CaManager } from '../manager.js';
import type { Minter } from '../minter.js';
import { certFingerprint } from '../manager.js';

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** The agent API's TLS identity lives for this long; renewed at half-life. */
export const SERVER_SVID_TTL = 3600;
/** Backoff between failed renewals of that identity: 5 s doubling to 60 s, without end. */
const RENEW_RETRY_MIN_MS = 5_000;
const RENEW_RETRY_MAX_MS = 60_000;

/**
 * The server's own X509-SVID (`spiffe://<td>/anchorage/server`) for the agent
 * API, and the trust anchors it asks agents' certificates to chain to. It is
 * a grpc-js CertificateProvider, so both rotate under a running server.
 *
 * The TLS key is a software key: it protects one hour of transport, unlike
 * the CA keys, and TLS handshakes would otherwise queue behind SVID signing
 * in the HSM.
 */
export class ServerTlsIdentity implements CertificateProvider {
  readonly spiffeId: SpiffeId;
  private readonly ca: CaManager;
  private readonly minter: Minter;
  private readonly log: Logger;
  private readonly caListeners = new Set<CaListener>();
  private readonly idListeners = new Set<IdentityListener>();
  private identity: { certificate: Buffer; privateKey: Buffer; notAfter: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private retryMs = RENEW_RETRY_MIN_MS;
  private readonly onBundle = () => this.emitCa();
  /** Fingerprint of the intermediate that signed the current certificate. */
  private issuer = '';
  /** A tainted intermediate signed the current certificate: replace it now, not at half-life. */
  private readonly onTaint = (tainted: { x509: readonly string[] }) => {
    if (this.closed || !tainted.x509.includes(this.issuer)) return;
    this.log.warn({ spiffeId: this.spiffeId.toString() }, 'agent api: the server TLS certificate was signed by a tainted authority; renewing it now');
    if (this.timer) clearTimeout(this.timer);
    this.schedule(0);
  };

  constructor(opts: { ca: CaManager; minter: Minter; logger: Logger }) {
    this.ca = opts.ca;
    this.minter = opts.minter;
    this.log = opts.logger;
    this.spiffeId = SpiffeId.fromPath(this.ca.trustDomain, '/anchorage/server');
  }

  async start(): Promise<void> {
    await this.renew();
    this.ca.on('bundle', this.onBundle);
    this.ca.on('taint', this.onTaint);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ca.off('bundle', this.onBundle);
    this.ca.off('taint', this.onTaint);
  }

  private async renew(): Promise<void> {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const minted = await this.minter.mintX509({
      spiffeId: this.spiffeId,
      spki: publicKey.export({ type: 'spki', format: 'der' }),
      ttl: 0,
    });
    this.identity = {
      certificate: Buffer.from(minted.chain.map((d) => toPem('CERTIFICATE', d)).join('')),
      privateKey: Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string),
      notAfter: minted.notAfter,
    };
    this.issuer = minted.chain[1] ? certFingerprint(minted.chain[1]) : '';
    for (const l of this.idListeners) l(this.identity);
    this.retryMs = RENEW_RETRY_MIN_MS;
    this.schedule(Math.max(1000, (minted.notAfter * 1000 - Date.now()) / 2));
  }

  /**
   * Renewal is retried until it succeeds (a token outage can outlast any fixed
   * number of tries), backing off so an outage is not hammered; the current
   * certificate keeps serving meanwhile.
   */
  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.renew().catch((err) => {
        const wait = this.retryMs;
        this.retryMs = Math.min(this.retryMs * 2, RENEW_RETRY_MAX_MS);
        this.log.error({ err, retryInMs: wait }, 'agent api: renewing the server TLS certificate failed; retrying');
        this.schedule(wait);
      });
    }, delayMs).unref();
  }

  /** PEM of the trust anchors agents' SVIDs must chain to. */
  caPem(): Buffer {
    return Buffer.from(this.ca.bundle().x509.authorities().map((d) => toPem('CERTIFICATE', d)).join(''));
  }

  /** The current TLS certificate (for tests and status). */
  currentCertificate(): X509Certificate {
    return new X509Certificate(this.identity!.certificate);
  }

  private emitCa(): void {
    const update = { caCertificate: this.caPem() };
    for (const l of this.caListeners) l(update);
  }

  // grpc-js registers its own watcher only after adding these listeners, so
  // the first update must arrive asynchronously or it is lost.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => {
      if (this.caListeners.has(listener)) listener({ caCertificate: this.caPem() });
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.idListeners.add(listener);
    queueMicrotask(() => {
      if (this.identity && this.idListeners.has(listener)) listener(this.identity);
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.idListeners.delete(listener);
  }
}
