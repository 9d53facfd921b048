// The servers an agent may talk to (`server_address`: one host:port or a
// list) and which one it uses now. Every server of the trust domain accepts
// the agent's SVID and is checked the same way (its SPIFFE ID, the agent's
// bundle), so moving to another one needs no new attestation.
//
// Each configured host:port becomes one or more targets: an IP literal is
// one target; a DNS name is one target per A/AAAA record (looked up again
// each time the agent has gone round the whole list, so a changed record is
// seen). The agent stays on its target while it works and moves to the next
// only when that one fails (sticky: no moving back when an earlier one
// returns).
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** Looks up every address of a host name (A and AAAA). */
export type Resolver = (host: string) => Promise<string[]>;

const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** Splits "host:port" / "[v6]:port" (validated by config.ts) into its host, without brackets, and port. */
export function splitHostPort(hostPort: string): { host: string; port: string } {
  const at = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, at);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: hostPort.slice(at + 1) };
}

function joinHostPort(host: string, port: string): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A move from one target to the next, for the log line and the counter. */
export interface ServerSwitch {
  from: string;
  to: string;
}

export class ServerAddresses {
  readonly #configured: string[];
  readonly #resolve: Resolver;
  #targets: string[];
  #index = 0;
  #switches = 0;

  constructor(configured: string[], resolve: Resolver = systemResolver) {
    if (configured.length === 0) throw new Error('agent: no server address');
    this.#configured = configured;
    this.#resolve = resolve;
    // Until the first lookup: the addresses as written (grpc-js resolves names itself).
    this.#targets = [...configured];
  }

  /** The target in use: "ip:port" (or "host:port" when its lookup failed). */
  get current(): string {
    return this.#targets[this.#index]!;
  }

  /** Every target, in the order tried. */
  get targets(): readonly string[] {
    return this.#targets;
  }

  /** How many times the agent moved to another target. */
  get switches(): number {
    return this.#switches;
  }

  /**
   * Looks up every configured name; the current target stays current if it is
   * still among the results. A name that cannot be looked up is kept as
   * written (it is tried, fails, and the next is tried).
   */
  async refresh(): Promise<void> {
    const out: string[] = [];
    for (const hp of this.#configured) {
      const { host, port } = splitHostPort(hp);
      if (isIP(host) !== 0) {
        out.push(joinHostPort(host, port));
        continue;
      }
      let addrs: string[] = [];
      try {
        addrs = await this.#resolve(host);
      } catch {
        addrs = [];
      }
      if (addrs.length === 0) out.push(hp);
      for (const a of addrs) out.push(joinHostPort(a, port));
    }
    const unique = [...new Set(out)];
    const current = this.current;
    this.#targets = unique;
    const keep = unique.indexOf(current);
    this.#index = keep >= 0 ? keep : 0;
  }

  /**
   * The current target failed: moves to the next one (going round, with a
   * fresh lookup when back at the start). Returns the move, or undefined
   * when there is no other target to move to.
   */
  async next(): Promise<ServerSwitch | undefined> {
    const from = this.current;
    if (this.#index + 1 < this.#targets.length) this.#index++;
    else {
      this.#index = 0;
      await this.refresh().catch(() => undefined);
      // The lookup may have put `from` back first: skip it if another exists.
      if (this.current === from && this.#targets.length > 1) this.#index = (this.#index + 1) % this.#targets.length;
    }
    const to = this.current;
    if (to === from) return undefined;
    this.#switches++;
    return { from, to };
  }
}
