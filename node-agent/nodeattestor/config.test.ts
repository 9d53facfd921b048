import { describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
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

  it.each<[string, unknown, string]>([
    ['an unknown type', { type: 'tpm' }, 'config: agent.yaml: node_attestor.type: must be one of: join_token'],
    ['no type', {}, 'config: agent.yaml: node_attestor.type: must be one of: join_token'],
    ['an unknown key', { type: 'join_token', token: 'x' }, 'config: agent.yaml: node_attestor: unknown key(s): token'],
    ['not a mapping', 'join_token', 'config: agent.yaml: node_attestor: Invalid input: expected object, received string'],
  ])('refuses %s', (_name, value, message) => {
    expect(errorOf({ ...good, node_attestor: value })).toBe(message);
  });
});
