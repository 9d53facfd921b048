// The server side of node attestation: one interface per kind, as SPIRE's
// server NodeAttestor plugin. The agent API (ca/agentapi/attest.ts) owns the
// stream, its bounds and the CSR; an attestor only judges the evidence.
import type { Selector } from '../../common/selector.js';

/** What a node attestor vouches for once it accepted the evidence. */
export interface NodeAttestation {
  /**
   * Path of the agent's SPIFFE ID, under `/anchorage/agent/<type>/`, e.g.
   * `/anchorage/agent/join_token/<token>`. The same node must get the same
   * path each time it attests (re-attestation replaces the agent record).
   */
  agentIdPath: string;
  /** Node selectors, matched by node aliases (entries parented by the server). */
  selectors: Selector[];
}

/**
 * Asks the agent a question and waits for its answer. The caller bounds the
 * size of both, the number of rounds and the total time; it rejects with
 * `invalid_argument` or a deadline error, which the attestor lets through.
 */
export type Challenge = (challenge: Buffer) => Promise<Buffer>;

/** A server node attestor: judges one agent's evidence. */
export interface NodeAttestor {
  /** The `attestation_type` it answers, e.g. "join_token". */
  readonly type: string;
  /**
   * Checks `payload` (and any challenge answers) and returns the agent's
   * identity, or throws an AnchorageError: `invalid_argument` for a
   * malformed payload, `permission_denied` for evidence that is not good
   * (unknown, used, forged). Evidence is spent here, so the agent API calls
   * this only after everything else in the request was checked.
   */
  attest(payload: Buffer, challenge: Challenge): Promise<NodeAttestation>;
  /**
   * Cheap checks of the payload's shape that spend nothing, made before the
   * agent API checks the CSR, so a plainly malformed request is told so first.
   * Throws `invalid_argument`.
   */
  precheck?(payload: Buffer): void;
}
