// Original file: proto/spiffe/workload.proto

import type { X509SVID as _X509SVID, X509SVID__Output as _X509SVID__Output } from './X509SVID.js';

export interface X509SVIDResponse {
  /**
   * never empty; the first is the default
   */
  'svids'?: (_X509SVID)[];
  /**
   * DER CRLs
   */
  'crl'?: (Buffer | Uint8Array | string)[];
  /**
   * trust domain ID -> concatenated DER certificates
   */
  'federated_bundles'?: ({[key: string]: Buffer | Uint8Array | string});
}

export interface X509SVIDResponse__Output {
  /**
   * never empty; the first is the default
   */
  'svids': (_X509SVID__Output)[];
  /**
   * DER CRLs
   */
  'crl': (Buffer)[];
  /**
   * trust domain ID -> concatenated DER certificates
   */
  'federated_bundles': ({[key: string]: Buffer});
}
