// Original file: proto/anchorage/admin/v1/admin.proto


export interface StringList {
  'items'?: (string)[];
}

export interface StringList__Output {
  'items': (string)[];
}
