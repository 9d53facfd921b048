import type { Selector } from '../common/selector.js';

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
  /**
   * The executable the peer ran when the connection was accepted (the file
   * behind /proc/<pid>/exe), or null when it could not be read then (no
   * ptrace access, the peer already gone). Every later attestation on the
   * connection must find the same file, or refuse: a process that executes
   * another binary after connecting gets no identity on that connection.
   * Absent only for credentials not made by `peerCredentials()` (tests).
   */
  executable?: ExecutableIdentity | null;
  /**
   * Field 22 of /proc/<pid>/stat (start time, clock ticks after boot) when
   * the connection was accepted. Without a pidfd it pins the process for the
   * connection's lifetime: a reused pid belongs to a process that started later.
   */
  startTime?: bigint;
}

/** Which file a process was executing, as the attestor compares it across calls. */
export interface ExecutableIdentity {
  /** Device and inode: which file, whatever its name now. */
  dev: bigint;
  ino: bigint;
  /**
   * Birth time where the filesystem records one (0 where it does not), so a
   * new file that happens to reuse a freed inode number is not taken for the old one.
   */
  birthtimeNs: bigint;
  /**
   * `dev:ino:size:mtime:ctime`: the file's contents as of accept. If it
   * differs later, the file was written or relinked since, and its hash is no
   * longer known to be that of the binary that connected.
   */
  contentKey: string;
}

/**
 * Turns a caller into selectors. One implementation per selector type
 * (`unix`, later `k8s`, `docker`…). The agent runs every attestor configured
 * in `workload_attestors` (node-agent/attestor/registry.ts) for each caller:
 * the Workload API server (server.ts) takes one attestor, and the agent gives
 * it a `UnionAttestor` (node-agent/attestor/union.ts) whose answer is the
 * union of theirs. So an attestor must return only what it is sure of, and
 * only selectors of its own type:
 * an omitted selector can only narrow what a workload gets, a wrong one widens it.
 * If any attestor fails, the caller gets no selectors at all.
 *
 * Every implementation runs the shared contract suite in
 * test/contract/workload-attestor.ts.
 *
 * Implementations throw `AnchorageError('unavailable', …)` when the caller
 * cannot be attested right now (it exited, /proc is unreadable); the Workload
 * API maps that to gRPC `Unavailable`, which clients retry. Credentials that
 * could not have come from the kernel (a pid ≤ 0, a negative or fractional
 * id) are `invalid_argument`.
 */
export interface WorkloadAttestor {
  /** The selector type this attestor produces, e.g. `unix`; a union's is its members' joined by `+`. */
  readonly name: string;
  attest(peer: PeerCredentials): Promise<Selector[]>;
  /**
   * Synchronously confirms that the caller of an open stream is still the
   * process that connected, running what it ran then: before a stream sends
   * a changed message it must not go to a process that executed another
   * binary since. Throws `permission_denied` for such a process, and
   * `unavailable` for one that is gone. Cheap (a few syscalls), so a change
   * pushed to many streams at once costs no full attestation each; the
   * stream's selectors stay those of its start, as in SPIRE.
   */
  confirm?(peer: PeerCredentials): void;
}
