// The agent side of node attestation: what the agent sends the server's node
// attestor of the same type (ca/nodeattestor/), and how it answers its
// challenges. connection.ts drives the AttestAgent stream with it.

/** Evidence for one attestation, and the answers that go with it. */
export interface AttestationAttempt {
  /** params.payload of the AttestAgent stream. */
  payload: Buffer;
  /** Answers one challenge of the server's attestor. */
  respond(challenge: Buffer): Promise<Buffer>;
  /** The server refused this evidence (PERMISSION_DENIED): do not offer it again. */
  refused(): void;
  /** True when `agentId` (the server's answer) is the ID this evidence names. */
  expects(agentId: string): boolean;
}

/**
 * An agent node attestor. Evidence is gathered per attempt, not per
 * attestor, because it can change between attempts (an operator puts a new
 * join token in the config) and a refusal must mark the evidence that was
 * refused, not whatever is current when the answer arrives.
 */
export interface NodeAttestor {
  /** params.attestation_type, e.g. "join_token". */
  readonly type: string;
  /**
   * The evidence for one attestation. Throws an AnchorageError when there is
   * none worth sending (`failed_precondition`: none configured or already
   * spent; `permission_denied`: the server already refused it).
   */
  begin(): Promise<AttestationAttempt>;
}
