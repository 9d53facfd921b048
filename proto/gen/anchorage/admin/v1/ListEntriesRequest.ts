// Original file: proto/anchorage/admin/v1/admin.proto


export interface ListEntriesRequest {
  /**
   * optional filter
   */
  'parent_id'?: (string);
  /**
   * optional filter
   */
  'spiffe_id'?: (string);
}

export interface ListEntriesRequest__Output {
  /**
   * optional filter
   */
  'parent_id': (string);
  /**
   * optional filter
   */
  'spiffe_id': (string);
}
