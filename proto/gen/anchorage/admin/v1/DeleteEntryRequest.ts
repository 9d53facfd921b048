// Original file: proto/anchorage/admin/v1/admin.proto


export interface DeleteEntryRequest {
  'id'?: (string);
}

export interface DeleteEntryRequest__Output {
  'id': (string);
}
