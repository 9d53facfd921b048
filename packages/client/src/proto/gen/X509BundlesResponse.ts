// Original file: proto/spiffe/workload.proto


export interface X509BundlesResponse {
  'crl'?: (Buffer | Uint8Array | string)[];
  /**
   * trust domain ID -> concatenated DER certificates
   */
  'bundles'?: ({[key: string]: Buffer | Uint8Array | string});
}

export interface X509BundlesResponse__Output {
  'crl': (Buffer)[];
  /**
   * trust domain ID -> concatenated DER certificates
   */
  'bundles': ({[key: string]: Buffer});
}
