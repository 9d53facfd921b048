import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../ca/server.js';
import { startInProcessServer, type InProcessServer } from '../test/helpers/in-process-server.js';
import { Admin } from '../cli/client.js';
import { silentLogger } from '../common/log.js';
import { captureLogger } from '../test/helpers/log.js';
import { NodeAgent } from './agent.js';
import { jwtKid } from './agent/taint.js';
import { parseAgentConfig } from './config.js';
import { STATE_FILE } from './state.js';
import { until } from '../test/helpers/until.js';

// Taint against the real server in process: the agent re-mints every
// workload SVID and its own SVID signed by the tainted intermediate, and
// drops the JWT-SVIDs of a tainted key (agent/taint.ts has the unit tests).

const TD = 'taint-agent.test';
let dir: string;
let running: InProcessServer;
let server: RunningServer;
let admin: Admin;

const sel = (uid: number) => [{ type: 'unix', value: `uid:${uid}` }];
const sha = (d: Uint8Array) => createHash('sha256').update(d).digest('hex');


beforeAll(async () => {
  running = await startInProcessServer('anchorage-agent-taint-', { trust_domain: TD, key_manager: { type: 'disk' }, agent_svid_ttl: '1h' }, { logger: silentLogger(), dataSubdir: 'server' });
  dir = running.dir;
  server = running.server;
  admin = new Admin(running.cfg.admin_socket);
  writeFileSync(join(dir, 'bundle.pem'), running.rootPem);
});

afterAll(async () => {
  admin?.close();
  await running?.close();
});

/** Retries an admin call the server refuses while agents lag behind the bundle (the root gate). */
async function whenAgentsCaughtUp<T>(call: () => Promise<T>): Promise<T> {
  const end = Date.now() + 15_000;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (Date.now() > end || !String((err as Error).message).includes('bundle')) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('node agent and tainted authorities (real server)', () => {
  it('re-mints every workload SVID and its own SVID of a tainted intermediate at once, drops the JWT-SVIDs of a tainted key, and keeps serving across a root rotation', async () => {
    const token = (await admin.call('CreateJoinToken', { spiffe_id: '', ttl: 600 })).token;
    const config = parseAgentConfig(
      { trust_domain: TD, server_address: `127.0.0.1:${server.agentPort}`, data_dir: join(dir, 'agent'), socket_path: join(dir, 'sock', 'api.sock'), trust_bundle_file: join(dir, 'bundle.pem'), join_token: token },
      'agent.yaml',
      dir,
    );
    const { logger, records } = captureLogger();
    const agent = await NodeAgent.start({ config, logger });
    try {
      for (const uid of [7001, 7002]) {
        await admin.call('CreateEntry', { entry: { spiffe_id: `spiffe://${TD}/w${uid}`, parent_id: agent.spiffeId!, selectors: sel(uid), x509_svid_ttl: 0, jwt_svid_ttl: 0, hint: '' } });
      }
      await until('the SVIDs', () => agent.cache.x509Identities(sel(7001)).length === 1 && agent.cache.x509Identities(sel(7002)).length === 1, 15_000, 20);
      const issuer = (uid: number) => sha(agent.cache.x509Identities(sel(uid))[0]!.chain[1]!);
      const ownIssuer = () => sha(Buffer.from(JSON.parse(readFileSync(join(config.data_dir, STATE_FILE), 'utf8')).agent.chain[1], 'base64'));
      const [jwtBefore] = await agent.cache.jwtSvids(sel(7001), ['aud']);

      const x509 = await admin.call('ListAuthorities', { kind: 'x509' });
      const old = x509.authorities.find((a) => a.status === 'active')!;
      expect(issuer(7001)).toBe(old.fingerprint.toLowerCase());
      expect(ownIssuer()).toBe(old.fingerprint.toLowerCase());
      const next = (await admin.call('PrepareAuthority', { kind: 'x509', id: '', force: false })).authority!;
      await admin.call('ActivateAuthority', { kind: 'x509', id: next.id, force: false });
      // Activation alone re-mints nothing.
      await new Promise((r) => setTimeout(r, 300));
      expect(issuer(7001)).toBe(old.fingerprint.toLowerCase());
      await admin.call('TaintAuthority', { kind: 'x509', id: old.id, force: false });
      const want = next.fingerprint.toLowerCase();
      await until('SVIDs from the successor', () => issuer(7001) === want && issuer(7002) === want && ownIssuer() === want, 15_000, 20);
      const lines = records.filter((r) => r.msg === 'agent: tainted authorities changed');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ taintedX509: 1, reminting: 2, agentSvidTainted: true });
      expect(records.filter((r) => r.msg === 'agent: the server still signs with a tainted authority; minting those svids again later')).toEqual([]);

      // JWT: the cached token of the tainted key goes; the next one is signed by the successor.
      const [again] = await agent.cache.jwtSvids(sel(7001), ['aud']);
      expect(again!.token).toBe(jwtBefore!.token);
      const jwtList = await admin.call('ListAuthorities', { kind: 'jwt' });
      const oldKey = jwtList.authorities.find((a) => a.status === 'active')!;
      expect(jwtKid(jwtBefore!.token)).toBe(oldKey.kid);
      const nextKey = (await admin.call('PrepareAuthority', { kind: 'jwt', id: '', force: false })).authority!;
      await admin.call('ActivateAuthority', { kind: 'jwt', id: nextKey.id, force: false });
      await admin.call('TaintAuthority', { kind: 'jwt', id: oldKey.id, force: false });
      await until('the jwt taint', () => records.filter((r) => r.msg === 'agent: tainted authorities changed').length === 2, 15_000, 20);
      expect(records.filter((r) => r.msg === 'agent: tainted authorities changed')[1]).toMatchObject({ taintedJwt: 1, droppedJwts: 1, reminting: 0 });
      const [fresh] = await agent.cache.jwtSvids(sel(7001), ['aud']);
      expect(fresh!.token).not.toBe(jwtBefore!.token);
      expect(jwtKid(fresh!.token)).toBe(nextKey.kid);

      // Root rotation: a new root, an intermediate under it, the old one tainted, then the old root revoked.
      const root1 = (await admin.call('PrepareAuthority', { kind: 'root', id: '', force: false })).authority!;
      await until('the new root in the agent bundle', () => agent.cache.bundle(TD)!.x509.size === 2, 15_000, 20);
      await whenAgentsCaughtUp(() => admin.call('ActivateAuthority', { kind: 'root', id: root1.id, force: false }));
      const underNew = (await admin.call('PrepareAuthority', { kind: 'x509', id: '', force: false })).authority!;
      expect(underNew.issuer_id).toBe(root1.id);
      await admin.call('ActivateAuthority', { kind: 'x509', id: underNew.id, force: false });
      await admin.call('TaintAuthority', { kind: 'x509', id: next.id, force: false });
      const want2 = underNew.fingerprint.toLowerCase();
      await until('SVIDs under the new root', () => issuer(7001) === want2 && issuer(7002) === want2 && ownIssuer() === want2, 15_000, 20);
      await whenAgentsCaughtUp(() => admin.call('RevokeAuthority', { kind: 'x509', id: next.id, force: false }));
      await until('the old root to leave the agent bundle', () => agent.cache.bundle(TD)!.x509.size === 1, 15_000, 20);
      expect(sha(agent.cache.bundle(TD)!.x509.authorities()[0]!)).toBe(root1.fingerprint.toLowerCase());
      // Every SVID held chains to the new bundle: nothing to mint again, and the agent still talks to the server.
      expect(records.filter((r) => r.msg === 'agent: svids no longer chain to the new bundle; minting anew')).toEqual([]);
      await admin.call('CreateEntry', { entry: { spiffe_id: `spiffe://${TD}/w7003`, parent_id: agent.spiffeId!, selectors: sel(7003), x509_svid_ttl: 0, jwt_svid_ttl: 0, hint: '' } });
      await until('an SVID after the root rotation', () => agent.cache.x509Identities(sel(7003)).length === 1, 15_000, 20);
      expect(issuer(7003)).toBe(want2);
    } finally {
      await agent.close();
    }
  }, 90_000);
});
