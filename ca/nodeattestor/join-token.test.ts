import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AnchorageError } from '../../common/errors.js';
import { JoinTokenAgentAttestor } from '../../node-agent/nodeattestor/join-token.js';
import { agentNodeAttestor } from '../../node-agent/nodeattestor/registry.js';
import { nodeAttestorContract } from '../../test/contract/node-attestor.js';
import { SqliteDataStore } from '../datastore/sqlite/index.js';
import { JoinTokenAttestor } from './join-token.js';
import { DEFAULT_NODE_ATTESTORS, NodeAttestorRegistry } from './registry.js';

const NOW = 1_700_000_000;

/** A real SQLite datastore holding one fresh token. */
async function tokenStore() {
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-jointoken-'));
  const ds = SqliteDataStore.open(join(dir, 'ds.sqlite3'), { now: () => NOW });
  const token = 'ab'.repeat(16);
  await ds.createJoinToken({ token, expiresAt: NOW + 600 });
  return {
    ds,
    token,
    cleanup: async () => {
      await ds.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

nodeAttestorContract('join_token', {
  challenges: false,
  trustDomain: 'contract.test',
  async setup() {
    const { ds, token, cleanup } = await tokenStore();
    let lastAgentId: string | undefined;
    return {
      server: new JoinTokenAttestor({ datastore: ds, now: () => NOW }),
      agent: new JoinTokenAgentAttestor({ token: () => token, source: 'agent.yaml', lastAgentId: () => lastAgentId }),
      expectedAgentIdPath: `/anchorage/agent/join_token/${token}`,
      cleanup,
    };
  },
});

describe('join_token node attestor', () => {
  it('an expired token is refused with the one message for every bad token', async () => {
    const { ds, token, cleanup } = await tokenStore();
    try {
      const late = new JoinTokenAttestor({ datastore: ds, now: () => NOW + 601 });
      await expect(late.attest(Buffer.from(token), () => Promise.reject(new Error('no')))).rejects.toThrow(
        new AnchorageError('permission_denied', 'agent api: join token is unknown, used or expired'),
      );
    } finally {
      await cleanup();
    }
  });

  it('the agent does not send the token of its last identity, nor one the server refused, nor none', async () => {
    const t = 'cd'.repeat(16);
    const spent = new JoinTokenAgentAttestor({ token: () => t, source: 'a.yaml', lastAgentId: () => `spiffe://td/anchorage/agent/join_token/${t}` });
    await expect(spent.begin()).rejects.toThrow(`agent: join token cdcdcdcd… was already used by this agent; put a new one in a.yaml`);
    const refusedOnce = new JoinTokenAgentAttestor({ token: () => t, source: 'a.yaml', lastAgentId: () => undefined });
    (await refusedOnce.begin()).refused();
    await expect(refusedOnce.begin()).rejects.toThrow(new AnchorageError('permission_denied', 'agent: the server refused join token cdcdcdcd…; put a new one in a.yaml'));
    const none = new JoinTokenAgentAttestor({ token: () => undefined, source: 'a.yaml', lastAgentId: () => undefined });
    await expect(none.begin()).rejects.toThrow('agent: no valid agent SVID and no join_token in a.yaml: create one with "anchorage token create" on the server');
  });

  it('registries: join_token by default; unknown types and duplicates are clear errors', async () => {
    const { ds, cleanup } = await tokenStore();
    try {
      expect(DEFAULT_NODE_ATTESTORS).toEqual(['join_token']);
      expect(NodeAttestorRegistry.fromTypes(DEFAULT_NODE_ATTESTORS, { datastore: ds, now: () => NOW }).types()).toEqual(['join_token']);
      expect(() => NodeAttestorRegistry.fromTypes(['sev'], { datastore: ds, now: () => NOW })).toThrow(
        new AnchorageError('invalid_argument', 'node attestor: unknown type "sev" (known: join_token, tpm, x509pop)'),
      );
      expect(() => NodeAttestorRegistry.fromTypes(['tpm'], { datastore: ds, now: () => NOW })).toThrow(
        new AnchorageError('invalid_argument', 'node attestor: "tpm" needs settings: configure it under node_attestors'),
      );
      expect(() => NodeAttestorRegistry.fromTypes(['join_token', 'join_token'], { datastore: ds, now: () => NOW })).toThrow(
        'node attestor: "join_token" is listed twice',
      );
      const deps = { source: 'a.yaml', joinToken: () => undefined, lastAgentId: () => undefined };
      expect(agentNodeAttestor({ type: 'join_token' }, deps).type).toBe('join_token');
      expect(() => agentNodeAttestor({ type: 'toString' }, deps)).toThrow(new AnchorageError('invalid_argument', 'agent: unknown node attestor type "toString" (known: join_token, tpm, x509pop)'));
    } finally {
      await cleanup();
    }
  });
});
