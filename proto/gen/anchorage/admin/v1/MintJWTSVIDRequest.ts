// Original file: proto/anchorage/admin/v1/admin.proto


export interface MintJWTSVIDRequest {
  'spiffe_id'?: (string);
  'audience'?: (string)[];
  /**
   * seconds; 0 = server default
   */
  'ttl'?: (number);
}

export interface MintJWTSVIDRequest__Output {
  'spiffe_id': (string);
  'audience': (string)[];
  /**
   * seconds; 0 = server default
   */
  'ttl': (number);
}
