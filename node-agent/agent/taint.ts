// Tainted authorities (`anchorage authority x509|jwt taint`): the server
// names them on the sync stream (has_tainted, in full whenever the set
// changes) and the agent at once re-mints every workload X509-SVID and its
// own SVID signed by a tainted intermediate, and drops every cached JWT-SVID
// signed by a tainted key. Also here: SVIDs that no longer chain to the
// bundle (an authority revoked, whether or not its taint was seen) are
// re-minted when the bundle changes. The NodeAgent (../agent.ts) owns the
// minting, the renewal and the timer; this holds the sets and decides.
import { createHash } from 'node:crypto';
import { Backoff, type BackoffOptions } from '@anchorage/client/backoff';
import { errorMessage } from '@anchorage/client/errors';
import type { X509Bundle } from '@anchorage/client/spiffe/bundle';
import type { TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import type { Logger } from '../../common/log.js';
import type { HeldSvid, WorkloadCache } from '../cache.js';

/** How the server names a tainted X.509 authority: SHA-256 of its DER, lowercase hex. */
const X509_AUTHORITY = /^[0-9a-f]{64}$/;
/** A kid longer than this is not one of ours (the server's are short); refused as malformed. */
const MAX_KID_LENGTH = 256;

/**
 * Retries of SVIDs that came back still signed by a tainted authority (the
 * server has not switched to the successor yet): 1 s doubling to 30 s.
 */
export const TAINT_RETRY: BackoffOptions = { initialMs: 1_000, maxMs: 30_000 };

/** SHA-256 (lowercase hex) of an SVID chain's issuing intermediate, chain[1]; undefined for a chain without one. */
export function issuerHash(chain: readonly Uint8Array[]): string | undefined {
  const issuer = chain[1];
  return issuer === undefined ? undefined : createHash('sha256').update(issuer).digest('hex');
}

/** The `kid` of a compact JWS's header; undefined when it has none or the header is unreadable. */
export function jwtKid(token: string): string | undefined {
  const dot = token.indexOf('.');
  if (dot <= 0) return undefined;
  try {
    const header: unknown = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8'));
    const kid = (header as { kid?: unknown } | null)?.kid;
    return typeof kid === 'string' ? kid : undefined;
  } catch {
    return undefined;
  }
}

/** The taint fields of a sync message. */
export interface TaintMessage {
  has_tainted: boolean;
  tainted_x509_authorities: string[];
  tainted_jwt_authorities: string[];
}

/** What the {@link TaintResponder} needs of the agent. */
export interface TaintHost {
  cache: WorkloadCache;
  log: Logger;
  /** Milliseconds since the epoch. */
  nowMs: () => number;
  /** The agent's own SVID chain, if it has one. */
  ownChain: () => readonly Uint8Array[] | undefined;
  /** Starts minting what is pending (the agent's mint pipeline). */
  mintNow: () => void;
  /** Renews the agent's own SVID now instead of at half-life. */
  renewNow: () => void;
}

/** Sets equal as sets. */
function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/**
 * Holds the tainted sets (in memory: the server sends them again on every new
 * stream) and acts when they change; retries, with backoff, SVIDs that came
 * back still signed by a tainted authority, so that a server not yet switched
 * does not make the agent loop.
 */
export class TaintResponder {
  readonly #host: TaintHost;
  #x509: ReadonlySet<string> = new Set();
  #jwt: ReadonlySet<string> = new Set();
  readonly #mintBackoff: Backoff;
  readonly #renewBackoff: Backoff;
  /** When still-tainted workload SVIDs are tried again (ms since the epoch); 0: not waiting. */
  #mintRetryAt = 0;

  constructor(host: TaintHost, retry: BackoffOptions = TAINT_RETRY) {
    this.#host = host;
    this.#mintBackoff = new Backoff(retry);
    this.#renewBackoff = new Backoff(retry);
  }

  /** Tainted X.509 authorities (SHA-256 hex of the intermediate's DER). */
  get x509(): ReadonlySet<string> {
    return this.#x509;
  }

  /** Tainted JWT key ids. */
  get jwt(): ReadonlySet<string> {
    return this.#jwt;
  }

  /** True when the chain's issuing intermediate is tainted. */
  isTainted(chain: readonly Uint8Array[]): boolean {
    if (this.#x509.size === 0) return false;
    const h = issuerHash(chain);
    return h !== undefined && this.#x509.has(h);
  }

  /**
   * One sync message. Without has_tainted nothing changed. With it, the sets
   * are replaced; when they differ from what was held, every SVID the new set
   * taints is marked for minting at once (and minting started), the own SVID
   * is renewed if tainted, cached JWT-SVIDs of tainted kids are dropped, and
   * one info line says how many. Malformed names are ignored with a warning
   * (they could never match anything). Returns true when the sets changed.
   */
  onSync(m: TaintMessage): boolean {
    if (!m.has_tainted) return false;
    const x509 = new Set<string>();
    const jwt = new Set<string>();
    const bad: string[] = [];
    for (const a of m.tainted_x509_authorities) {
      const h = a.toLowerCase();
      if (X509_AUTHORITY.test(h)) x509.add(h);
      else bad.push(a.slice(0, 80));
    }
    for (const k of m.tainted_jwt_authorities) {
      if (k.length > 0 && k.length <= MAX_KID_LENGTH) jwt.add(k);
      else bad.push(k.slice(0, 80));
    }
    if (bad.length > 0) {
      this.#host.log.warn({ ignored: bad.slice(0, 10), count: bad.length }, 'agent: the server named tainted authorities in a form the agent does not know; ignoring those');
    }
    if (sameSet(x509, this.#x509) && sameSet(jwt, this.#jwt)) return false;
    this.#x509 = x509;
    this.#jwt = jwt;
    this.#mintBackoff.reset();
    this.#renewBackoff.reset();
    this.#mintRetryAt = 0;
    const reminted = this.#host.cache.reissueWhere((s) => this.isTainted(s.chain));
    const droppedJwts = this.#host.cache.taintJwtKids(jwt);
    const own = this.#host.ownChain();
    const ownTainted = own !== undefined && this.isTainted(own);
    this.#host.log.info(
      { taintedX509: x509.size, taintedJwt: jwt.size, reminting: reminted, droppedJwts, agentSvidTainted: ownTainted },
      'agent: tainted authorities changed',
    );
    if (ownTainted) this.#host.renewNow();
    if (reminted > 0) this.#host.mintNow();
    return true;
  }

  /**
   * The bundle changed: every SVID that no longer chains to it (its
   * authority revoked, with or without a taint seen first) is re-minted, and
   * the own SVID renewed. One chain is verified per distinct intermediate.
   */
  onBundleChanged(td: TrustDomain, bundle: X509Bundle | undefined): number {
    if (!bundle) return 0;
    const now = new Date(this.#host.nowMs());
    const verdict = new Map<string, string | undefined>();
    const chainsNot = (chain: readonly Uint8Array[]): string | undefined => {
      const k = issuerHash(chain) ?? `leaf:${createHash('sha256').update(chain[0] ?? new Uint8Array()).digest('hex')}`;
      if (!verdict.has(k)) {
        let why: string | undefined;
        try {
          verifyX509Svid([...chain], (t) => (t.equals(td) ? bundle : undefined), now);
        } catch (err) {
          why = errorMessage(err);
        }
        verdict.set(k, why);
      }
      return verdict.get(k);
    };
    let reason: string | undefined;
    const n = this.#host.cache.reissueWhere((s: HeldSvid) => {
      const why = chainsNot(s.chain);
      reason ??= why;
      return why !== undefined;
    });
    const own = this.#host.ownChain();
    const ownOut = own !== undefined && chainsNot(own) !== undefined;
    if (n > 0 || ownOut) {
      this.#host.log.info({ reminting: n, agentSvid: ownOut, reason: reason ?? (own ? chainsNot(own) : undefined) }, 'agent: svids no longer chain to the new bundle; minting anew');
    }
    if (ownOut) this.#host.renewNow();
    if (n > 0) this.#host.mintNow();
    return n;
  }

  /**
   * Workload SVIDs just minted: those still signed by a tainted authority
   * (the server has not switched yet) are tried again after a backoff, said
   * once per round in the log, instead of at once and forever.
   */
  afterMint(svids: readonly HeldSvid[]): void {
    if (this.#x509.size === 0) return;
    let still = 0;
    for (const s of svids) if (this.isTainted(s.chain)) still++;
    if (still === 0 || this.#mintRetryAt > 0) return;
    const delay = this.#mintBackoff.next();
    this.#mintRetryAt = this.#host.nowMs() + delay;
    this.#host.log.warn({ svids: still, retryMs: delay }, 'agent: the server still signs with a tainted authority; minting those svids again later');
  }

  /**
   * The own SVID just renewed: undefined if its authority is not tainted,
   * else the delay (ms) before renewing again, said in the log.
   */
  afterRenew(chain: readonly Uint8Array[]): number | undefined {
    if (!this.isTainted(chain)) return undefined;
    const delay = this.#renewBackoff.next();
    this.#host.log.warn({ retryMs: delay }, 'agent: the renewed agent svid is still signed by a tainted authority; renewing again later');
    return delay;
  }

  /** When {@link tick} has something to do (ms since the epoch), if ever. */
  nextWake(): number | undefined {
    return this.#mintRetryAt > 0 ? this.#mintRetryAt : undefined;
  }

  /** The agent's timer fired: still-tainted workload SVIDs whose retry came due. */
  tick(): void {
    const now = this.#host.nowMs();
    if (this.#mintRetryAt > 0 && this.#mintRetryAt <= now) {
      this.#mintRetryAt = 0;
      if (this.#host.cache.reissueWhere((s) => this.isTainted(s.chain)) > 0) this.#host.mintNow();
    }
  }
}
