import type { X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import { AnchorageError, errorMessage, isAnchorageError } from './common/errors.js';
import { toPem } from './common/pem.js';
import type { X509Bundle } from './spiffe/bundle.js';
import type { SpiffeId, TrustDomain } from './spiffe/id.js';
import { verifyX509Svid } from './spiffe/x509svid.js';
import type { Authorizer } from './authorizer.js';
import type { X509Svid } from './types.js';
import type { X509Source } from './x509source.js';

/**
 * Mutual TLS between workloads, authenticated by X509-SVIDs and authorized
 * by SPIFFE ID — never by host name.
 *
 * OpenSSL checks the peer's chain against the trust anchors of every trust
 * domain the source knows (the `ca` option), then the chain is verified
 * again by the SPIFFE rules (`verifyX509Svid`): the leaf must be a proper
 * SVID, and it must chain to an authority of *its own* trust domain. OpenSSL
 * alone would accept a certificate claiming `spiffe://a/...` signed by the
 * root of federated trust domain `b`; the second check is what keeps
 * federation from turning every trusted root into a root for every name.
 * Only then is the authorizer asked.
 */

/** What the TLS helpers read from a source. {@link X509Source} fits; so does any holder of static material. */
export interface X509SvidSource {
  svid(): X509Svid;
  bundles(): Iterable<X509Bundle>;
  bundleFor(td: TrustDomain): X509Bundle | undefined;
}

/** The secure-context part: this workload's SVID and the trust anchors of every known trust domain. */
export interface SvidSecureContextOptions {
  key: string;
  /** PEM chain, leaf first. */
  cert: string;
  /** PEM trust anchors; replaces Node's public root store, so public CAs are never trusted. */
  ca: string[];
  minVersion: tls.SecureVersion;
}

/** A verified TLS peer. */
export interface PeerIdentity {
  readonly spiffeId: SpiffeId;
  /** The chain as verified, leaf first. */
  readonly chain: readonly X509Certificate[];
}

/**
 * Peers verified by {@link guardTlsServer} or {@link connectMtls}. Kept
 * here because Node cannot be relied on for it later: on the client side of
 * a TLS 1.3 connection, `getPeerCertificate()` can come back empty once the
 * server's session tickets have been processed.
 */
const peers = new WeakMap<tls.TLSSocket, PeerIdentity>();

/** PEM renderings, computed once per SVID and per bundle set (both are replaced, never changed, on rotation). */
const svidPem = new WeakMap<X509Svid, { key: string; cert: string }>();
const caPem = new WeakMap<object, string[]>();

function secureContextOptions(source: X509SvidSource): SvidSecureContextOptions {
  const svid = source.svid();
  let pem = svidPem.get(svid);
  if (pem === undefined) {
    pem = {
      key: svid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      cert: svid.chain.map((c) => toPem('CERTIFICATE', c.raw)).join(''),
    };
    svidPem.set(svid, pem);
  }
  const bundles = source.bundles();
  let ca = caPem.get(bundles);
  if (ca === undefined) {
    ca = [];
    for (const bundle of bundles) for (const der of bundle.authorities()) ca.push(toPem('CERTIFICATE', der));
    caPem.set(bundles, ca);
  }
  return { key: pem.key, cert: pem.cert, ca: [...ca], minVersion: 'TLSv1.2' };
}

/** The chain as Node reports it (`getPeerCertificate(true)`), leaf first, as DER. */
function chainOf(cert: tls.PeerCertificate | tls.DetailedPeerCertificate): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<unknown>();
  let c: tls.PeerCertificate | undefined = cert;
  // A self-signed root is its own issuerCertificate; the set stops the walk there.
  while (c !== undefined && c.raw !== undefined && !seen.has(c)) {
    seen.add(c);
    out.push(new Uint8Array(c.raw));
    c = (c as Partial<tls.DetailedPeerCertificate>).issuerCertificate;
  }
  return out;
}

/**
 * Verifies a peer certificate (detailed form, with its issuers) by the
 * SPIFFE rules against the source's bundles, then asks the authorizer.
 * Returns the peer's SPIFFE ID; throws `unauthenticated` for a bad chain and
 * the authorizer's `permission_denied` for a peer it refuses.
 */
export function verifyPeerCertificate(cert: tls.PeerCertificate | tls.DetailedPeerCertificate, source: X509SvidSource, authorizer: Authorizer): SpiffeId {
  return verifyPeer(cert, source, authorizer).spiffeId;
}

function verifyPeer(cert: tls.PeerCertificate | tls.DetailedPeerCertificate, source: X509SvidSource, authorizer: Authorizer): PeerIdentity {
  const chain = chainOf(cert);
  if (chain.length === 0) throw new AnchorageError('unauthenticated', 'spiffetls: peer presented no certificate');
  let verified: { spiffeId: SpiffeId; chain: X509Certificate[] };
  try {
    verified = verifyX509Svid(chain, (td) => source.bundleFor(td));
  } catch (err) {
    throw new AnchorageError('unauthenticated', `spiffetls: peer certificate rejected: ${errorMessage(err)}`, { cause: err });
  }
  try {
    authorizer(verified.spiffeId, verified.chain);
  } catch (err) {
    if (isAnchorageError(err)) throw err;
    throw new AnchorageError('permission_denied', `spiffetls: peer ${verified.spiffeId.toString()} refused: ${errorMessage(err)}`, { cause: err });
  }
  return Object.freeze({ spiffeId: verified.spiffeId, chain: Object.freeze(verified.chain) });
}

/**
 * {@link verifyPeerCertificate} on a socket whose handshake has just
 * completed; records the result for {@link peerSpiffeId} and {@link peerIdentity}.
 */
export function verifyTlsPeer(socket: tls.TLSSocket, source: X509SvidSource, authorizer: Authorizer): SpiffeId {
  const peer = verifyPeer(socket.getPeerCertificate(true), source, authorizer);
  peers.set(socket, peer);
  return peer.spiffeId;
}

/** The verified SPIFFE ID of the peer of a socket accepted by a guarded server or opened by {@link connectMtls}. */
export function peerSpiffeId(socket: tls.TLSSocket): SpiffeId | undefined {
  return peers.get(socket)?.spiffeId;
}

/** The verified SPIFFE ID and chain of such a peer. */
export function peerIdentity(socket: tls.TLSSocket): PeerIdentity | undefined {
  return peers.get(socket);
}

/**
 * Options for `tls.connect` (and `https.request`): this workload's SVID as
 * client certificate, the trust anchors, and a `checkServerIdentity` that
 * ignores the host name and verifies the server's SVID and SPIFFE ID
 * instead. A snapshot: call it for every connection, so a rotated SVID is
 * used as soon as the source has it. An authorization failure is the
 * socket's 'error' (our AnchorageError, e.g. `spiffetls: peer … is not
 * authorized: want …`).
 *
 * With an `https.Agent`, turn TLS session caching off (`maxCachedSessions: 0`):
 * Node skips `checkServerIdentity` on resumed sessions.
 */
export function tlsClientOptions(source: X509SvidSource, authorizer: Authorizer): tls.ConnectionOptions & SvidSecureContextOptions {
  return clientOptions(source, authorizer);
}

function clientOptions(source: X509SvidSource, authorizer: Authorizer, onVerified?: (peer: PeerIdentity) => void): tls.ConnectionOptions & SvidSecureContextOptions {
  return {
    ...secureContextOptions(source),
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      try {
        // Not `onVerified?.(verifyPeer(…))`: an absent callback would skip the verification too.
        const peer = verifyPeer(cert, source, authorizer);
        onVerified?.(peer);
        return undefined;
      } catch (err) {
        return err as Error;
      }
    },
  };
}

/**
 * Options for `tls.createServer` (and `https.createServer`,
 * `http2.createSecureServer`): this workload's SVID, the trust anchors, and
 * a client certificate required. A snapshot, and OpenSSL's chain check
 * only: Node has no hook that could authorize a client by SPIFFE ID during
 * the handshake, so pass the server to {@link guardTlsServer} (or use
 * {@link createMtlsServer}, which does both).
 */
export function tlsServerOptions(source: X509SvidSource): tls.TlsOptions & SvidSecureContextOptions {
  return { ...secureContextOptions(source), requestCert: true, rejectUnauthorized: true };
}

export interface GuardOptions {
  /** Told about every refused connection (default: nothing; the refusal is also emitted as 'tlsClientError'). */
  onRefused?: (err: Error, socket: tls.TLSSocket) => void;
  /** Told when a source update could not be installed (e.g. the picker chose no SVID). */
  onContextError?: (err: Error) => void;
}

/**
 * Makes a TLS server (plain, https or http2) authorize every client by
 * SPIFFE ID and follow the source's rotations.
 *
 * Authorization: the server's 'secureConnection' event — which is what
 * `https` and `http2` servers serve connections from — is only emitted for
 * clients whose SVID verifies and whom the authorizer accepts. Others are
 * destroyed and reported as a 'tlsClientError' with the reason. (With TLS
 * 1.3 the client finishes its handshake before the server has looked at
 * its certificate, so a refused client sees its connection closed rather
 * than a handshake failure.)
 *
 * Rotation: every source update installs the new SVID and bundles with
 * `server.setSecureContext`; connections already open keep theirs.
 *
 * Returns a function that undoes both.
 */
export function guardTlsServer(server: tls.Server, source: X509Source, authorizer: Authorizer, options: GuardOptions = {}): () => void {
  type Emit = (this: tls.Server, event: string | symbol, ...args: unknown[]) => boolean;
  const originalEmit = server.emit as Emit;
  const guardedEmit = function (this: tls.Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'secureConnection') {
      const socket = args[0] as tls.TLSSocket;
      try {
        verifyTlsPeer(socket, source, authorizer);
      } catch (err) {
        socket.destroy();
        options.onRefused?.(err as Error, socket);
        originalEmit.call(this, 'tlsClientError', err, socket);
        return false;
      }
    }
    return originalEmit.call(this, event, ...args);
  };
  server.emit = guardedEmit as typeof server.emit;

  const onUpdate = (): void => {
    try {
      server.setSecureContext(secureContextOptions(source));
    } catch (err) {
      // The previous context stays in place; the check above still refuses
      // every peer the source cannot vouch for.
      options.onContextError?.(err as Error);
    }
  };
  source.on('update', onUpdate);
  return () => {
    if ((server.emit as Emit) === guardedEmit) server.emit = originalEmit as typeof server.emit;
    source.off('update', onUpdate);
  };
}

/**
 * `tls.createServer` with {@link tlsServerOptions} and {@link guardTlsServer}:
 * every client is authorized by SPIFFE ID, the server's SVID rotates with
 * the source. `options` may add anything but the key material; `listener`
 * gets only authorized connections (`peerSpiffeId(socket)` says who).
 */
export function createMtlsServer(
  source: X509Source,
  authorizer: Authorizer,
  options: tls.TlsOptions = {},
  listener?: (socket: tls.TLSSocket) => void,
): tls.Server {
  const server = tls.createServer({ ...options, ...tlsServerOptions(source) });
  const release = guardTlsServer(server, source, authorizer);
  server.once('close', release);
  if (listener) server.on('secureConnection', listener);
  return server;
}

/**
 * `tls.connect` with {@link tlsClientOptions}; resolves once the handshake
 * is done and the server authorized, rejects with the reason otherwise.
 * `options` supplies where to connect (`host`, `port`, `path`…); the key
 * material and verification are always the source's.
 */
export function connectMtls(source: X509SvidSource, authorizer: Authorizer, options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    let socket: tls.TLSSocket;
    let verified: PeerIdentity | undefined;
    try {
      socket = tls.connect({ ...options, ...clientOptions(source, authorizer, (peer) => (verified = peer)) });
    } catch (err) {
      reject(err);
      return;
    }
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      try {
        // checkServerIdentity verified a fresh handshake; a resumed session
        // skipped it, so that one is verified here.
        if (verified === undefined || socket.isSessionReused()) verifyTlsPeer(socket, source, authorizer);
        else peers.set(socket, verified);
      } catch (err) {
        socket.destroy();
        reject(err);
        return;
      }
      resolve(socket);
    });
  });
}
