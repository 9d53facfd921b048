import { describe, expect, it } from 'vitest';
import { AnchorageError } from '../../common/errors.js';
import { parseAgentConfig } from '../config.js';

const good = { trust_domain: 'example.org', server_address: '127.0.0.1:8081', data_dir: 'agent', join_token: 'a'.repeat(32), insecure_bootstrap: true };

function errorOf(doc: unknown): string {
  try {
    parseAgentConfig(doc, 'agent.yaml', '/etc/anchorage');
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return (err as AnchorageError).message;
  }
  throw new Error('expected an error');
}

describe('agent config: node_attestor', () => {
  it('defaults to join_token, and takes it spelled out', () => {
    expect(parseAgentConfig(good, 'agent.yaml', '/').node_attestor).toEqual({ type: 'join_token' });
    expect(parseAgentConfig({ ...good, node_attestor: { type: 'join_token' } }, 'agent.yaml', '/').node_attestor).toEqual({ type: 'join_token' });
  });

  it('takes tpm with the kernel resource manager by default or a swtpm, and x509pop with its files resolved', () => {
    const parse = (v: unknown) => parseAgentConfig({ ...good, node_attestor: v }, 'agent.yaml', '/etc/anchorage').node_attestor;
    expect(parse({ type: 'tpm' })).toEqual({ type: 'tpm', tcti: 'device:/dev/tpmrm0', ek_algorithm: 'rsa' });
    expect(parse({ type: 'tpm', tcti: 'swtpm:host=127.0.0.1,port=2321', ek_algorithm: 'ecc384' })).toEqual({
      type: 'tpm',
      tcti: 'swtpm:host=127.0.0.1,port=2321',
      ek_algorithm: 'ecc384',
    });
    expect(parse({ type: 'x509pop', cert_file: 'node.pem', key_file: '/k/node.key' })).toEqual({ type: 'x509pop', cert_file: '/etc/anchorage/node.pem', key_file: '/k/node.key' });
  });

  it.each<[string, unknown, string]>([
    ['an unknown type', { type: 'sev' }, 'config: agent.yaml: node_attestor.type: must be one of: join_token, tpm, x509pop'],
    ['no type', {}, 'config: agent.yaml: node_attestor.type: must be one of: join_token, tpm, x509pop'],
    ['a TCTI with options of its own', { type: 'tpm', tcti: 'device:/dev/tpm0 -o x' }, 'config: agent.yaml: node_attestor.tcti: must be device:/dev/<tpm device> or swtpm:host=<host>,port=<port> (or mssim:host=…,port=…)'],
    ['an unknown TCTI', { type: 'tpm', tcti: 'libtpms' }, 'config: agent.yaml: node_attestor.tcti: must be device:/dev/<tpm device> or swtpm:host=<host>,port=<port> (or mssim:host=…,port=…)'],
    ['an unknown EK algorithm', { type: 'tpm', ek_algorithm: 'ecc256' }, 'config: agent.yaml: node_attestor.ek_algorithm: must be rsa or ecc384'],
    ['a tpm key of x509pop', { type: 'tpm', cert_file: 'x' }, 'config: agent.yaml: node_attestor: unknown key(s): cert_file'],
    ['x509pop without a key', { type: 'x509pop', cert_file: 'n.pem' }, 'config: agent.yaml: node_attestor.key_file: is required'],
    ['x509pop with an empty cert_file', { type: 'x509pop', cert_file: '', key_file: 'k' }, 'config: agent.yaml: node_attestor.cert_file: must be a file name'],
    ['x509pop with a list for a file', { type: 'x509pop', cert_file: ['a'], key_file: 'k' }, 'config: agent.yaml: node_attestor.cert_file: must be a file name'],
    ['an unknown key', { type: 'join_token', token: 'x' }, 'config: agent.yaml: node_attestor: unknown key(s): token'],
    ['not a mapping', 'join_token', 'config: agent.yaml: node_attestor: Invalid input: expected object, received string'],
  ])('refuses %s', (_name, value, message) => {
    expect(errorOf({ ...good, node_attestor: value })).toBe(message);
  });
});
