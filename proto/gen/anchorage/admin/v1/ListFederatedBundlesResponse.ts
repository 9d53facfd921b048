// Original file: proto/anchorage/admin/v1/admin.proto

import type { FederatedBundle as _anchorage_admin_v1_FederatedBundle, FederatedBundle__Output as _anchorage_admin_v1_FederatedBundle__Output } from '../../../anchorage/admin/v1/FederatedBundle.js';

export interface ListFederatedBundlesResponse {
  'bundles'?: (_anchorage_admin_v1_FederatedBundle)[];
}

export interface ListFederatedBundlesResponse__Output {
  'bundles': (_anchorage_admin_v1_FederatedBundle__Output)[];
}
