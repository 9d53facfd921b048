// x509pop on the agent: sends the node certificate chain of agent.yaml
// (`node_attestor.cert_file`, PEM, leaf first) and signs the server's nonce
// with the node key (`node_attestor.key_file`, PEM PKCS#8 or traditional,
// 0600). Both files are read again at each attempt, so a renewed node
// certificate is used without a restart.
import { createHash, createPrivateKey, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { parseWire, wire, x509popChallenge, x509popSigned } from '../../common/attestation-wire.js';
import { AnchorageError, errorMessage } from '../../common/errors.js';
import { fromPem } from '../../common/pem.js';
import { readConfigFile } from '../../common/safe-file.js';
import type { AttestationAttempt, NodeAttestor } from './NodeAttestor.js';

export const X509POP = 'x509pop';
const MAX_FILE_BYTES = 256 * 1024;

export interface X509PopAgentOptions {
  certFile: string;
  keyFile: string;
}

/** Agent side of x509pop. */
export class X509PopAgentAttestor implements NodeAttestor {
  readonly type = X509POP;
  readonly #opts: X509PopAgentOptions;

  constructor(opts: X509PopAgentOptions) {
    this.#opts = opts;
  }

  async begin(): Promise<AttestationAttempt> {
    const { certFile, keyFile } = this.#opts;
    const bad = (file: string, err: unknown) => new AnchorageError('failed_precondition', `agent: x509pop: ${file}: ${errorMessage(err)}`);
    let chain: Buffer[];
    let key: KeyObject;
    try {
      chain = fromPem(readConfigFile(certFile, 'agent: x509pop: cert_file', { maxBytes: MAX_FILE_BYTES }).toString('utf8'), 'CERTIFICATE', 'cert_file');
      new X509Certificate(chain[0]!);
    } catch (err) {
      throw err instanceof AnchorageError && err.code === 'failed_precondition' ? err : bad(certFile, err);
    }
    try {
      key = createPrivateKey(readConfigFile(keyFile, 'agent: x509pop: key_file', { maxBytes: MAX_FILE_BYTES, secret: true }));
    } catch (err) {
      throw err instanceof AnchorageError && err.code === 'failed_precondition' ? err : bad(keyFile, new Error('not a PEM private key'));
    }
    const fingerprint = createHash('sha256').update(chain[0]!).digest('hex');
    const hash = key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256';
    return {
      payload: wire({ chain }),
      respond: async (c) => {
        const { nonce } = parseWire(x509popChallenge, c, 'agent: x509pop: challenge');
        return wire({ signature: sign(hash, x509popSigned(nonce), { key, dsaEncoding: 'der' }) });
      },
      refused: () => undefined, // nothing is spent; a new certificate in cert_file is picked up next time
      expects: (agentId) => agentId.endsWith(`/anchorage/agent/${X509POP}/${fingerprint}`),
    };
  }
}
