// Original file: proto/anchorage/admin/v1/admin.proto


export interface AgentBan {
  'spiffe_id'?: (string);
  'banned'?: (boolean);
  /**
   * BanAgent: true when the agent had a current record, now evicted.
   */
  'evicted'?: (boolean);
}

export interface AgentBan__Output {
  'spiffe_id': (string);
  'banned': (boolean);
  /**
   * BanAgent: true when the agent had a current record, now evicted.
   */
  'evicted': (boolean);
}
