import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import { ConnectionCap } from '../../common/tcp-guard.js';
import type { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import type { ServerTlsIdentity } from '../agentapi/tls-identity.js';
import { tcpLimits, type BundleEndpointConfig } from '../config.js';
import type { CaManager } from '../manager.js';

/**
 * The SPIFFE bundle endpoint (SPIFFE_Federation.md §4, §5): an HTTPS server
 * that answers `GET /` with this trust domain's current bundle document, so
 * other trust domains can federate with ours.
 *
 * Profiles: `https_spiffe` presents the server's own X509-SVID
 * (`spiffe://<td>/anchorage/server`, the agent API's identity, renewed under
 * the running server); `https_web` presents a certificate chain read from
 * files at start. Neither asks the client for credentials: the spec forbids it.
 */

/**
 * TLS parameters: TLS 1.2 and 1.3 with the AEAD suites of Mozilla's
 * "intermediate" profile, which the spec requires of bundle endpoints.
 */
const TLS_OPTIONS = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: false,
} as const satisfies SecureContextOptions;

/** The certificate chain and key an `https_web` endpoint serves. */
export interface WebIdentity {
  /** PEM, leaf first. */
  readonly certPem: string;
  /** PEM of the private key, as read. */
  readonly keyPem: string;
  readonly leaf: X509Certificate;
}

function configError(message: string): AnchorageError {
  return new AnchorageError('failed_precondition', `config: federation.bundle_endpoint.${message}`);
}

function readConfigFile(key: 'cert_file' | 'key_file', path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw configError(`${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]*?-----END CERTIFICATE-----\r?\n?/g;

/**
 * Reads and checks the `https_web` chain and key: every block a certificate,
 * each certificate issued by the next one (leaf first), and the key the
 * leaf's. Each problem is one line naming the key and the file. A key file
 * readable by group or others is served anyway, with a warning.
 */
export function loadWebIdentity(certFile: string, keyFile: string, log: Logger): WebIdentity {
  const certText = readConfigFile('cert_file', certFile);
  const blocks = certText.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) throw configError(`cert_file: ${certFile}: no PEM CERTIFICATE block found`);
  const chain = blocks.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch {
      throw configError(`cert_file: ${certFile}: certificate ${i + 1} is not a valid X.509 certificate`);
    }
  });
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i]!.checkIssued(chain[i + 1]!) || !chain[i]!.verify(chain[i + 1]!.publicKey)) {
      throw configError(`cert_file: ${certFile}: certificate ${i + 2} did not issue certificate ${i + 1}; the chain must be leaf first`);
    }
  }
  const leaf = chain[0]!;

  const keyText = readConfigFile('key_file', keyFile);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyText);
  } catch {
    throw configError(`key_file: ${keyFile}: not a PEM private key (or it is encrypted)`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw configError(`key_file: ${keyFile} does not match the certificate in ${certFile}`);
  }
  const mode = statSync(keyFile).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    log.warn({ keyFile, mode: mode.toString(8) }, 'federation: the bundle endpoint key file is readable by group or others; chmod 600 it');
  }
  const nowMs = Date.now();
  if (Date.parse(leaf.validTo) <= nowMs || Date.parse(leaf.validFrom) > nowMs) {
    log.warn({ certFile, validFrom: leaf.validFrom, validTo: leaf.validTo }, 'federation: the bundle endpoint certificate is not valid now');
  }
  return { certPem: blocks.map((b) => b.trimEnd() + '\n').join(''), keyPem: keyText, leaf };
}

export interface BundleEndpointOptions {
  config: BundleEndpointConfig;
  ca: CaManager;
  /** https_spiffe: the server's SVID, which renews itself. */
  tlsIdentity?: ServerTlsIdentity;
  /** https_web: from {@link loadWebIdentity}. */
  webIdentity?: WebIdentity;
  logger: Logger;
}

/** The document and headers served for one version of the bundle. */
interface Rendered {
  bundle: SpiffeBundle;
  body: Buffer;
}

export class BundleEndpoint {
  private readonly opts: BundleEndpointOptions;
  private readonly log: Logger;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private rendered: Rendered | undefined;
  private identityListener: grpc.experimental.IdentityCertificateUpdateListener | undefined;
  private port = 0;
  private cap: ConnectionCap | undefined;

  constructor(opts: BundleEndpointOptions) {
    this.opts = opts;
    this.log = opts.logger;
    if (opts.config.profile === 'https_spiffe' && !opts.tlsIdentity) throw new Error('federation: https_spiffe needs the server TLS identity');
    if (opts.config.profile === 'https_web' && !opts.webIdentity) throw new Error('federation: https_web needs a certificate and key');
  }

  /** Open TCP connections (handshaking or established). */
  get openConnections(): number {
    return this.cap?.open ?? 0;
  }

  /** The port it listens on (the configured one, or the one picked for port 0). */
  get boundPort(): number {
    return this.port;
  }

  /**
   * The document to serve: the CA's current bundle, with the endpoint's
   * refresh hint when it differs from the stored one. Re-rendered only when
   * the CA publishes a new bundle (a new object), not on every request.
   */
  document(): Buffer {
    const bundle = this.opts.ca.bundle();
    if (this.rendered?.bundle !== bundle) {
      let served = bundle;
      if (bundle.refreshHint !== this.opts.config.refresh_hint) {
        served = bundle.clone();
        served.refreshHint = this.opts.config.refresh_hint;
      }
      this.rendered = { bundle, body: Buffer.from(served.marshal(), 'utf8') };
    }
    return this.rendered.body;
  }

  async start(): Promise<number> {
    const tlsOptions = await this.initialSecureContext();
    const { config } = this.opts;
    // handshakeTimeout replaces Node's 120 s, which let half-open connections
    // pile up (issue 10, item 7); the cap bounds how many there can be at all.
    const cap = new ConnectionCap('federation: bundle endpoint', tcpLimits(config), this.log);
    const server = createServer(
      { ...tlsOptions, requestCert: false, handshakeTimeout: config.handshake_timeout * 1000 },
      (req, res) => this.handle(req, res),
    );
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    server.keepAliveTimeout = 5_000;
    server.on('connection', (s: Socket) => {
      if (!cap.admit(s)) return;
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    this.cap = cap;
    server.on('tlsClientError', (err) => this.log.debug({ err: errorMessage(err) }, 'federation: bundle endpoint TLS handshake failed'));
    this.server = server;

    const { host, port } = splitAddress(this.opts.config.address);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(new AnchorageError('failed_precondition', `federation: cannot listen on ${this.opts.config.address}: ${err.message}`));
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err: errorMessage(err) }, 'federation: bundle endpoint error'));
    this.port = (server.address() as AddressInfo).port;

    if (this.opts.config.profile === 'https_spiffe') {
      // Every renewal of the server SVID replaces the context; handshakes
      // already under way finish with the old one.
      this.identityListener = (update) => {
        if (!update) return;
        try {
          server.setSecureContext({ ...TLS_OPTIONS, cert: update.certificate, key: update.privateKey });
          this.log.debug('federation: bundle endpoint picked up the renewed server SVID');
        } catch (err) {
          this.log.error({ err: errorMessage(err) }, 'federation: could not install the renewed server SVID');
        }
      };
      this.opts.tlsIdentity!.addIdentityCertificateListener(this.identityListener);
    }
    return this.port;
  }

  /** The first certificate and key: the SVID as it is now, or the web chain. */
  private async initialSecureContext(): Promise<SecureContextOptions> {
    if (this.opts.config.profile === 'https_web') {
      const web = this.opts.webIdentity!;
      return { ...TLS_OPTIONS, cert: web.certPem, key: web.keyPem };
    }
    // ServerTlsIdentity hands its current identity to a new listener
    // asynchronously; take that one and let the long-lived listener follow renewals.
    const identity = this.opts.tlsIdentity!;
    const first = await new Promise<{ certificate: Buffer; privateKey: Buffer }>((resolve, reject) => {
      const once: grpc.experimental.IdentityCertificateUpdateListener = (update) => {
        identity.removeIdentityCertificateListener(once);
        if (update) resolve(update);
        else reject(new AnchorageError('unavailable', 'federation: the server SVID is not available'));
      };
      identity.addIdentityCertificateListener(once);
    });
    return { ...TLS_OPTIONS, cert: first.certificate, key: first.privateKey };
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/') {
      plain(res, 404, 'not found: the bundle is served at /\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      plain(res, 405, 'method not allowed\n');
      return;
    }
    let body: Buffer;
    try {
      body = this.document();
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'federation: no bundle to serve');
      plain(res, 503, 'the bundle is not available yet\n');
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': body.length,
      // Always the newest bundle: caches must not hold an old one.
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  async close(): Promise<void> {
    if (this.identityListener) this.opts.tlsIdentity?.removeIdentityCertificateListener(this.identityListener);
    this.identityListener = undefined;
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Idle keep-alive connections would hold close() open.
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

/** `host:port` or `[v6]:port` (already checked by the config schema). */
function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(i + 1)) };
}
