import { sign, type KeyObject } from 'node:crypto';
import { bitString, encode, ia5Bytes, implicitConstructed, implicitPrimitive, octetString, oid, seq, set, smallInteger } from '@anchorage/client/der';
import { newKeyAndCsr } from '../common/csr-create.js';
import { keyAndCsr } from '../test/helpers/csr.js';

/**
 * A minimal PKCS#10 request for a fresh P-256 key, as an agent sends for each
 * workload SVID (empty subject: the server takes the ID from the entry).
 */
export function makeP256Csr(): Buffer {
  return keyAndCsr().csr;
}

const ECDSA_WITH_SHA256 = oid('1.2.840.10045.4.3.2');
const EXTENSION_REQUEST = oid('1.2.840.113549.1.9.14');
const SUBJECT_ALT_NAME = oid('2.5.29.17');

/**
 * A PKCS#10 request (empty subject) that asks for one URI SAN, `uri`, in an
 * extensionRequest attribute, signed by a P-256 key: SPIRE's MintX509SVID
 * takes the SPIFFE ID from the CSR, where Anchorage's takes it from the
 * request message.
 */
export function createP256CsrWithUri(privateKey: KeyObject, spki: Buffer, uri: string): Buffer {
  // Extension ::= SEQUENCE { extnID, extnValue OCTET STRING (GeneralNames) }; uniformResourceIdentifier is [6] IA5String.
  const san = seq(SUBJECT_ALT_NAME, octetString(seq(implicitPrimitive(6, ia5Bytes(uri)))));
  // Attribute ::= SEQUENCE { type, values SET OF Extensions }
  const attributes = implicitConstructed(0, seq(EXTENSION_REQUEST, set(seq(san))));
  const info = encode(seq(smallInteger(0), seq(), spki, attributes));
  return encode(seq(info, seq(ECDSA_WITH_SHA256), bitString(sign('sha256', info, privateKey))));
}

/**
 * A fresh P-256 key (made as common/csr-create.ts makes keys: through
 * createECDH, never generateKeyPairSync + JWK export) and a CSR for it that
 * names `uri`.
 */
export function makeP256CsrWithUri(uri: string): { csr: Buffer; privateKey: KeyObject } {
  const { privateKey, spki } = newKeyAndCsr();
  return { csr: createP256CsrWithUri(privateKey, spki, uri), privateKey };
}
