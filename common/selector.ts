/**
 * A workload or node property an attestor vouches for, `type:value` (e.g.
 * `unix:uid:1000`). Entries name the selectors a caller must have; attestors
 * produce them. Shared by the server (entries, node aliases), the agent (its
 * cache matches them) and the Workload API (attestors return them).
 */
export interface Selector {
  /** e.g. "unix" */
  type: string;
  /** e.g. "uid:1000"; may itself contain colons */
  value: string;
}
