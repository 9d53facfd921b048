// Original file: proto/spiffe/workload.proto


export interface JWTSVIDRequest {
  /**
   * required
   */
  'audience'?: (string)[];
  /**
   * optional
   */
  'spiffe_id'?: (string);
}

export interface JWTSVIDRequest__Output {
  /**
   * required
   */
  'audience': (string)[];
  /**
   * optional
   */
  'spiffe_id': (string);
}
