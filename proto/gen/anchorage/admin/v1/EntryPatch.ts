// Original file: proto/anchorage/admin/v1/admin.proto

import type { SelectorList as _anchorage_admin_v1_SelectorList, SelectorList__Output as _anchorage_admin_v1_SelectorList__Output } from '../../../anchorage/admin/v1/SelectorList.js';
import type { StringList as _anchorage_admin_v1_StringList, StringList__Output as _anchorage_admin_v1_StringList__Output } from '../../../anchorage/admin/v1/StringList.js';

/**
 * Fields that are set are changed; absent ones keep their value.
 */
export interface EntryPatch {
  'spiffe_id'?: (string);
  'parent_id'?: (string);
  'selectors'?: (_anchorage_admin_v1_SelectorList | null);
  'x509_svid_ttl'?: (number);
  'jwt_svid_ttl'?: (number);
  'dns_names'?: (_anchorage_admin_v1_StringList | null);
  'federates_with'?: (_anchorage_admin_v1_StringList | null);
  'hint'?: (string);
  'admin'?: (boolean);
  'downstream'?: (boolean);
  '_spiffe_id'?: "spiffe_id";
  '_parent_id'?: "parent_id";
  '_x509_svid_ttl'?: "x509_svid_ttl";
  '_jwt_svid_ttl'?: "jwt_svid_ttl";
  '_hint'?: "hint";
  '_admin'?: "admin";
  '_downstream'?: "downstream";
}

/**
 * Fields that are set are changed; absent ones keep their value.
 */
export interface EntryPatch__Output {
  'spiffe_id'?: (string);
  'parent_id'?: (string);
  'selectors': (_anchorage_admin_v1_SelectorList__Output | null);
  'x509_svid_ttl'?: (number);
  'jwt_svid_ttl'?: (number);
  'dns_names': (_anchorage_admin_v1_StringList__Output | null);
  'federates_with': (_anchorage_admin_v1_StringList__Output | null);
  'hint'?: (string);
  'admin'?: (boolean);
  'downstream'?: (boolean);
  '_spiffe_id'?: "spiffe_id";
  '_parent_id'?: "parent_id";
  '_x509_svid_ttl'?: "x509_svid_ttl";
  '_jwt_svid_ttl'?: "jwt_svid_ttl";
  '_hint'?: "hint";
  '_admin'?: "admin";
  '_downstream'?: "downstream";
}
