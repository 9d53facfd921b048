// What the audit log records: one event per admin action, SVID issued,
// agent attestation, renewal or eviction, federation change, and authority
// step (prepare, activate, taint, revoke). The log itself (hash chain,
// HSM-signed checkpoints, storage) is in ca/audit/log.ts.

/** The admin socket caller, as the kernel reported it (SO_PEERCRED). */
export interface AuditActor {
  uid: number;
  gid: number;
  pid: number;
}

export interface AuditEvent {
  /**
   * Dotted name: `admin.<Method>`, `x509_svid.issued`, `jwt_svid.issued`,
   * `agent.attested|renewed|evicted|banned|unbanned`,
   * `agent.attestation_refused`, `agent.attestation_refusals_suppressed`,
   * `federation.<change>`, `authority.prepared|activated|tainted|revoked|dropped`.
   */
  type: string;
  /** Who asked: set for admin actions. */
  actor?: AuditActor;
  /** The agent involved: the minting agent for SVIDs, the attested agent. */
  agent?: string;
  /** The SPIFFE ID the event is about (the SVID's subject, the entry's ID). */
  spiffeId?: string;
  /** X509-SVID or CA certificate serial, lowercase hex. */
  serial?: string;
  /** JWT-SVID jti. */
  jti?: string;
  /** Unix seconds: when the issued SVID expires. */
  expiresAt?: number;
  /** CA journal id of the authority involved (the signer, or the one acted on). */
  authority?: string;
  /** `ok`, or the gRPC status name an action failed with. */
  outcome?: string;
  /** Anything else worth keeping, flat. */
  details?: Record<string, string | number | boolean>;
}

/** How soon a caller needs its record confirmed. */
export interface RecordOptions {
  /**
   * The caller has other work in flight for about this long (the minter: the
   * HSM signature it waits for anyway), so the log may hold the record up to
   * this many milliseconds to commit it together with others. Absent or 0:
   * committed as soon as the log's group commit allows.
   */
  withinMs?: number;
}

/** Where events go. record() resolves once the event is durably stored. */
export interface AuditSink {
  record(event: AuditEvent, opts?: RecordOptions): Promise<void>;
}

/** A sink that keeps nothing, for components built without an audit log (unit tests). */
export const NO_AUDIT: AuditSink = { record: async () => {} };
