// Original file: proto/anchorage/admin/v1/admin.proto


export interface CreateJoinTokenRequest {
  /**
   * optional: alias the attested agent to this ID
   */
  'spiffe_id'?: (string);
  /**
   * seconds; 0 = default (10 minutes)
   */
  'ttl'?: (number);
}

export interface CreateJoinTokenRequest__Output {
  /**
   * optional: alias the attested agent to this ID
   */
  'spiffe_id': (string);
  /**
   * seconds; 0 = default (10 minutes)
   */
  'ttl': (number);
}
