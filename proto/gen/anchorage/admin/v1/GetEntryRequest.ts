// Original file: proto/anchorage/admin/v1/admin.proto


export interface GetEntryRequest {
  'id'?: (string);
}

export interface GetEntryRequest__Output {
  'id': (string);
}
