/**
 * Distinguished names for the certificates the CA issues. Only the handful of
 * attribute types SPIFFE deployments put in subjects are supported, one
 * attribute per RDN, in the order given (which is the order the DER carries).
 */
import { invalid } from '@anchorage/client/errors';
import { encode, oid, printableString, seq, set, utf8String } from '@anchorage/client/der';
import type { Der } from '@anchorage/client/der';

/** Attribute types accepted in a subject or issuer name. */
export type NameAttributeType = 'C' | 'O' | 'OU' | 'CN' | 'serialNumber';

/** One relative distinguished name with a single attribute. */
export interface NameAttribute {
  type: NameAttributeType;
  value: string;
}

interface AttrSpec {
  oid: Buffer;
  /** Upper bound from RFC 5280 Appendix A (ub-*). */
  max: number;
  printable: boolean;
}

// RFC 5280 says DirectoryString SHOULD be UTF8String; countryName and
// serialNumber are PrintableString by definition.
const ATTRS: Record<NameAttributeType, AttrSpec> = {
  C: { oid: oid('2.5.4.6'), max: 2, printable: true },
  O: { oid: oid('2.5.4.10'), max: 64, printable: false },
  OU: { oid: oid('2.5.4.11'), max: 64, printable: false },
  CN: { oid: oid('2.5.4.3'), max: 64, printable: false },
  serialNumber: { oid: oid('2.5.4.5'), max: 64, printable: true },
};

/** The RDN `SET { SEQUENCE { type, value } }` for one attribute, unencoded. */
export function rdn(a: NameAttribute): Der {
  const spec = ATTRS[a.type];
  if (spec === undefined) throw invalid(`x509: unsupported name attribute ${String(a.type)}`);
  if (typeof a.value !== 'string' || a.value.length === 0) {
    throw invalid(`x509: name attribute ${a.type} must not be empty`);
  }
  // ub-* bounds count characters, not bytes.
  if ([...a.value].length > spec.max) {
    throw invalid(`x509: name attribute ${a.type} longer than ${spec.max} characters`);
  }
  if (a.type === 'C' && !/^[A-Z]{2}$/.test(a.value)) {
    throw invalid('x509: country must be two upper-case letters');
  }
  let value: Buffer;
  if (spec.printable) {
    try {
      value = printableString(a.value);
    } catch {
      throw invalid(`x509: name attribute ${a.type} has characters outside PrintableString`);
    }
  } else {
    value = utf8String(a.value);
  }
  return set(seq(spec.oid, value));
}

/**
 * Encodes a DER `Name` (RDNSequence). An empty list gives the empty name,
 * which X509-SVIDs may use (the SAN is then marked critical).
 */
export function encodeName(rdns: readonly NameAttribute[]): Buffer {
  return encode(seq(...rdns.map(rdn)));
}
