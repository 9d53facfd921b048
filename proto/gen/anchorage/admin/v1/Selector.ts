// Original file: proto/anchorage/admin/v1/admin.proto


export interface Selector {
  /**
   * e.g. "unix"
   */
  'type'?: (string);
  /**
   * e.g. "uid:1000"
   */
  'value'?: (string);
}

export interface Selector__Output {
  /**
   * e.g. "unix"
   */
  'type': (string);
  /**
   * e.g. "uid:1000"
   */
  'value': (string);
}
