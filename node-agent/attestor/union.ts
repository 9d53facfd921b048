import { AnchorageError, isAnchorageError } from '@anchorage/client/errors';
import type { Selector } from '../../common/selector.js';
import type { PeerCredentials, WorkloadAttestor } from '../../workload-api/WorkloadAttestor.js';

/**
 * Every configured workload attestor behind the one attestor the Workload API
 * takes: a caller's selectors are the union of what each attestor says about
 * it, as in SPIRE. Entries match on a subset of a caller's selectors, so the
 * union can only give a caller what some attestor vouched for.
 *
 * A caller is attested by all members or not at all: if any member fails,
 * the call fails with that member's error, never with the other members'
 * selectors alone (a partial answer would let a fault in one attestor
 * silently change which entries match).
 */
export class UnionAttestor implements WorkloadAttestor {
  /**
   * The members' selector types joined by `+` (`unix`, `unix+k8s`), so
   * `name.split('+')` is every selector type this attestor can produce.
   */
  readonly name: string;
  readonly #members: readonly WorkloadAttestor[];

  /** @param members at least one attestor, each producing a different selector type; asked in this order. */
  constructor(members: readonly WorkloadAttestor[]) {
    if (members.length === 0) throw new AnchorageError('invalid_argument', 'attestor: a union needs at least one attestor');
    const seen = new Set<string>();
    for (const m of members) {
      if (m.name === '' || m.name.includes('+')) throw new AnchorageError('invalid_argument', `attestor: ${JSON.stringify(m.name)} is not a selector type`);
      if (seen.has(m.name)) throw new AnchorageError('invalid_argument', `attestor: two attestors produce "${m.name}" selectors`);
      seen.add(m.name);
    }
    this.#members = [...members];
    this.name = this.#members.map((m) => m.name).join('+');
  }

  /** The member attestors, in the order they are asked. */
  get members(): readonly WorkloadAttestor[] {
    return this.#members;
  }

  /**
   * Runs every member concurrently and waits for all of them, even after one
   * failed: the server closes the caller's pidfd once this returns, and a
   * member still running would read /proc through a descriptor number that
   * may by then name another process. A failure is thrown as the member threw
   * it (a refusal before the first other failure). Selectors come in member
   * order, each `type:value` once.
   */
  async attest(peer: PeerCredentials): Promise<Selector[]> {
    const results = await Promise.allSettled(this.#members.map((m) => m.attest(peer)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    if (failed.length > 0) throw refusalFirst(failed);
    const seen = new Set<string>();
    const out: Selector[] = [];
    for (const r of results as PromiseFulfilledResult<Selector[]>[]) {
      for (const s of r.value) {
        const key = `${s.type}\u0000${s.value}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ type: s.type, value: s.value });
      }
    }
    return out;
  }

  /**
   * Every member that can confirm does, in member order; a failure is thrown
   * as that member threw it (a refusal before the first other failure). A
   * member without `confirm` has nothing cheap to re-check; its selectors,
   * like everyone's, stay those of the stream's start.
   */
  confirm(peer: PeerCredentials): void {
    const errors: unknown[] = [];
    for (const m of this.#members) {
      try {
        m.confirm?.(peer);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw refusalFirst(errors);
  }
}

/**
 * Of several failures, a refusal (PERMISSION_DENIED: this connection gets no
 * identity, ever) wins over the first one in member order: the others are
 * typically UNAVAILABLE, which makes clients retry on a connection where no
 * retry can succeed.
 */
function refusalFirst(errors: unknown[]): unknown {
  return errors.find((e) => isAnchorageError(e, 'permission_denied')) ?? errors[0];
}
