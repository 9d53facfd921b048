import type { Selector } from '../../ca/datastore/DataStore.js';

/**
 * Who is on the other end of a Workload API connection, as the kernel reported
 * it when the connection was accepted (`SO_PEERCRED`). The uid/gid are the
 * authority for identity; the pid only says where to look for the rest.
 */
export interface PeerCredentials {
  /** Thread-group id of the peer at connect() time. */
  pid: number;
  /** Effective uid of the peer at connect() time. */
  uid: number;
  /** Effective gid of the peer at connect() time. */
  gid: number;
  /**
   * A pidfd pinning the peer process (`SO_PEERPIDFD`). While it is open, the
   * attestor can tell whether `pid` still names the same process, which closes
   * the PID-reuse race. Absent on kernels without `SO_PEERPIDFD`. The owner of
   * the credentials closes it (see `closePidfd`).
   */
  pidfd?: number;
}

/**
 * Turns a caller into selectors. One implementation per selector type
 * (`unix`, later `k8s`, `docker`…); the agent runs every configured attestor
 * and unions the results, so an attestor must return only what it is sure of:
 * an omitted selector can only narrow what a workload gets, a wrong one widens it.
 *
 * Implementations throw `AnchorageError('unavailable', …)` when the caller
 * cannot be attested right now (it exited, /proc is unreadable); the Workload
 * API maps that to gRPC `Unavailable`, which clients retry.
 */
export interface WorkloadAttestor {
  /** The selector type this attestor produces, e.g. `unix`. */
  readonly name: string;
  attest(peer: PeerCredentials): Promise<Selector[]>;
}
