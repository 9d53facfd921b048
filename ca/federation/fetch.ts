import { request } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import { toPem } from '@anchorage/client/pem';
import { DEFAULT_MAX_BUNDLE_BYTES, SpiffeBundle, type X509Bundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, type TrustDomain } from '@anchorage/client/spiffe/id';
import { uriSansOf } from '@anchorage/client/spiffe/x509svid';

/**
 * Fetching a federated trust domain's bundle from its bundle endpoint, as
 * the SPIFFE Trust Domain and Bundle specification describes: over HTTPS,
 * authenticated per the endpoint's profile, and checked before anything of
 * it is trusted. Every refusal is an {@link AnchorageError} whose `reason`
 * says which check failed, so the caller can keep its last good bundle and
 * report why.
 */

export type FetchFailure =
  | 'tls'
  | 'http'
  | 'too_large'
  | 'malformed'
  | 'wrong_trust_domain'
  | 'sequence_backwards'
  | 'unreachable'
  /** https_spiffe without any X.509 authority of the peer to authenticate the endpoint with. */
  | 'no_authorities';

export class BundleFetchError extends AnchorageError {
  readonly reason: FetchFailure;
  constructor(reason: FetchFailure, message: string, cause?: unknown) {
    super(reason === 'unreachable' ? 'unavailable' : 'failed_precondition', message, cause === undefined ? undefined : { cause });
    this.name = 'BundleFetchError';
    this.reason = reason;
  }
}

export type EndpointProfile =
  /** Web PKI: the endpoint's certificate must be valid for the URL's host under the system roots (or `ca`). */
  | { kind: 'https_web'; ca?: string }
  /**
   * SPIFFE authentication: the endpoint presents an X509-SVID of
   * `endpointId`, verified against the latest bundle we hold for the
   * endpoint's trust domain (at first, the bootstrap bundle).
   */
  | { kind: 'https_spiffe'; endpointId: SpiffeId; authorities: X509Bundle };

export interface FetchOptions {
  url: string;
  /** The trust domain whose bundle this is. The document must not name any other. */
  trustDomain: TrustDomain;
  profile: EndpointProfile;
  /** The spiffe_sequence of the bundle held now: an older one is refused. */
  previousSequence?: number;
  maxBytes?: number;
  timeoutMs?: number;
}

/** Checks the endpoint URL once, when a relationship is configured. */
export function parseEndpointUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AnchorageError('invalid_argument', `federation: "${url}" is not a URL`);
  }
  if (u.protocol !== 'https:') throw new AnchorageError('invalid_argument', `federation: bundle endpoint URL must be https, not ${u.protocol.slice(0, -1)}`);
  if (u.username || u.password) throw new AnchorageError('invalid_argument', 'federation: bundle endpoint URL must not carry user info');
  if (u.hash) throw new AnchorageError('invalid_argument', 'federation: bundle endpoint URL must not have a fragment');
  return u;
}

/** Fetches, authenticates and checks the bundle; resolves only with a bundle fit to trust. */
export function fetchBundle(opts: FetchOptions): Promise<SpiffeBundle> {
  const url = parseEndpointUrl(opts.url);
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  const profile = opts.profile;
  const tls =
    profile.kind === 'https_web'
      ? { ...(profile.ca !== undefined && { ca: profile.ca }) }
      : {
          ca: profile.authorities.authorities().map((d) => toPem('CERTIFICATE', d)),
          // The host name means nothing here: the endpoint is named by its SPIFFE ID.
          checkServerIdentity: (_host: string, cert: PeerCertificate) => {
            const uris = uriSansOf(cert);
            const want = profile.endpointId.toString();
            return uris.length === 1 && uris[0] === want
              ? undefined
              : new Error(`the endpoint presented ${uris.join(', ') || 'no SPIFFE ID'}, expected ${want}`);
          },
        };
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise<SpiffeBundle>((resolvePromise, rejectPromise) => {
    // The socket timeout below fires only when the peer goes quiet; this one
    // bounds the whole fetch, so a peer trickling its body cannot hold it open.
    const overall = setTimeout(
      () => fail(new BundleFetchError('unreachable', `federation: ${url.href} did not send its bundle within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const resolve = (b: SpiffeBundle) => {
      clearTimeout(overall);
      resolvePromise(b);
    };
    const reject = (err: unknown) => {
      clearTimeout(overall);
      rejectPromise(err);
    };
    const fail = (err: BundleFetchError) => {
      req.destroy();
      reject(err);
    };
    const req = request(
      url,
      { method: 'GET', agent: false, timeout: timeoutMs, rejectUnauthorized: true, headers: { accept: 'application/json' }, ...tls },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return fail(new BundleFetchError('http', `federation: ${url.href} answered HTTP ${res.statusCode}`));
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) {
          return fail(new BundleFetchError('too_large', `federation: ${url.href} sent ${declared} bytes, more than the limit of ${maxBytes}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) return fail(new BundleFetchError('too_large', `federation: ${url.href} sent more than the limit of ${maxBytes} bytes`));
          chunks.push(c);
        });
        res.on('error', (err) => fail(new BundleFetchError('unreachable', `federation: ${url.href}: ${errorMessage(err)}`, err)));
        res.on('end', () => {
          if (size > maxBytes) return;
          try {
            resolve(checkDocument(Buffer.concat(chunks), opts, url.href));
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('timeout', () => fail(new BundleFetchError('unreachable', `federation: ${url.href} did not answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      // Certificate problems (unknown CA, wrong name or SPIFFE ID) are told apart from a network failure.
      const tlsProblem = /CERT|SELF_SIGNED|ERR_TLS|UNABLE_TO|expected spiffe|presented/i.test(`${err.code ?? ''} ${err.message}`);
      reject(new BundleFetchError(tlsProblem ? 'tls' : 'unreachable', `federation: ${url.href}: ${errorMessage(err)}`, err));
    });
    req.end();
  });
}

function checkDocument(body: Buffer, opts: FetchOptions, where: string): SpiffeBundle {
  let bundle: SpiffeBundle;
  try {
    bundle = SpiffeBundle.parse(opts.trustDomain, body, { maxBytes: opts.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES });
  } catch (err) {
    throw new BundleFetchError('malformed', `federation: ${where}: ${errorMessage(err)}`, err);
  }
  if (bundle.x509.size === 0 && bundle.jwt.size === 0) throw new BundleFetchError('malformed', `federation: ${where}: the bundle holds no keys`);
  // The document does not name its trust domain, but authorities that carry
  // a SPIFFE ID do: one of another trust domain means we were sent the wrong bundle.
  for (const cert of bundle.x509.certificates()) {
    for (const uri of uriSansOf(cert)) {
      let id: SpiffeId;
      try {
        id = SpiffeId.parse(uri);
      } catch {
        continue;
      }
      if (!id.memberOf(opts.trustDomain)) {
        throw new BundleFetchError('wrong_trust_domain', `federation: ${where}: an authority names ${id.toString()}, which is not in ${opts.trustDomain.name}`);
      }
    }
  }
  if (opts.previousSequence !== undefined && bundle.sequence !== undefined && bundle.sequence < opts.previousSequence) {
    throw new BundleFetchError(
      'sequence_backwards',
      `federation: ${where}: spiffe_sequence ${bundle.sequence} is lower than the ${opts.previousSequence} we hold; keeping ours`,
    );
  }
  return bundle;
}
