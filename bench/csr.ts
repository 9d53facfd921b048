import { keyAndCsr } from '../test/helpers/csr.js';

/**
 * A minimal PKCS#10 request for a fresh P-256 key, as an agent sends for each
 * workload SVID (empty subject: the server takes the ID from the entry).
 */
export function makeP256Csr(): Buffer {
  return keyAndCsr().csr;
}
