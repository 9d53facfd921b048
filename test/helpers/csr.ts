import { newKeyAndCsr } from '../../common/csr-create.js';

/** A fresh P-256 key and a minimal CSR for it, as an agent makes them. */
export function keyAndCsr(): { csr: Buffer; keyPem: string } {
  const { csr, privateKey } = newKeyAndCsr();
  return { csr, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}
