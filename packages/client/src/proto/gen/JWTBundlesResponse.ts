// Original file: proto/spiffe/workload.proto


export interface JWTBundlesResponse {
  /**
   * trust domain ID -> JWKS document
   */
  'bundles'?: ({[key: string]: Buffer | Uint8Array | string});
}

export interface JWTBundlesResponse__Output {
  /**
   * trust domain ID -> JWKS document
   */
  'bundles': ({[key: string]: Buffer});
}
