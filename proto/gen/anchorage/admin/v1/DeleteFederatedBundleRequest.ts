// Original file: proto/anchorage/admin/v1/admin.proto


export interface DeleteFederatedBundleRequest {
  'trust_domain'?: (string);
}

export interface DeleteFederatedBundleRequest__Output {
  'trust_domain': (string);
}
