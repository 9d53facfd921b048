import { describe, expect, it } from 'vitest';
import type { Agent__Output } from '../../proto/gen/anchorage/admin/v1/Agent.js';
import type { CAKey__Output } from '../../proto/gen/anchorage/admin/v1/CAKey.js';
import type { FederationRelationship__Output } from '../../proto/gen/anchorage/admin/v1/FederationRelationship.js';
import type { Authority__Output } from '../../proto/gen/anchorage/admin/v1/Authority.js';
import type { ListAuthoritiesResponse__Output } from '../../proto/gen/anchorage/admin/v1/ListAuthoritiesResponse.js';
import { agentChecks, authorityChecks, federationChecks, hsmChecks, rootChecks, rotationChecks } from './check.js';

// The horizons of `anchorage check` at their edges, on answers shaped as the
// admin API gives them; test/integration/check-anchors.test.ts runs the
// checks against real servers.

const NOW = 1_800_000_000;
const DAY = 86400;
const iso = (t: number) => new Date(t * 1000).toISOString();

function key(over: Partial<CAKey__Output>): CAKey__Output {
  return { id: 'k', kind: 'x509', status: 'active', key_id: 'label', kid: '', not_before: NOW - DAY, not_after: NOW + DAY, cert: Buffer.alloc(0), prepare_at: NOW + DAY / 2, activate_at: NOW + DAY - DAY / 6, ...over };
}

function agent(over: Partial<Agent__Output>): Agent__Output {
  return { spiffe_id: 'spiffe://td/anchorage/agent/join_token/a', attestation_type: 'join_token', cert_serial: '01', cert_not_after: NOW + 1800, selectors: [], evicted: false, banned: false, created_at: NOW - 60, updated_at: NOW - 60, last_seen_at: NOW - 30, bundle_sequence: 3, clock_skew_ms: 0, ...over };
}

describe('anchorage check horizons', () => {
  it('fails the HSM when the server cannot read the keys, and warns on keys in no HSM', () => {
    expect(hsmChecks(new Error('pkcs11: token "t" is unavailable'))).toEqual([
      { category: 'hsm', name: 'HSM reachable', status: 'fail', message: 'pkcs11: token "t" is unavailable', hint: "check the token, its module and PIN in server.yaml's key_manager, and the server's log" },
    ]);
    const memory = { journal_id: 'x', key_id: 'k1', key_manager: 'memory', found: false, sensitive: false, extractable: false, always_sensitive: false, never_extractable: false };
    expect(hsmChecks({ keys: [memory] })).toEqual([
      { category: 'hsm', name: 'CA key k1', status: 'warn', message: 'held by the memory key manager, not an HSM', hint: 'keep CA keys in an HSM in production (key_manager: type: pkcs11)' },
    ]);
  });


  it.each<[number, string]>([
    [91, 'ok'],
    [90, 'ok'],
    [89, 'warn'],
    [30, 'warn'],
    [29, 'fail'],
  ])('root expiring in %i days is %s', (days, status) => {
    const [c] = rootChecks([key({ kind: 'root', not_after: NOW + days * DAY })], NOW);
    expect(c).toMatchObject({ name: 'root', status, message: `expires in ${days} days (${iso(NOW + days * DAY)})` });
  });

  it('fails an expired root and a journal with none', () => {
    expect(rootChecks([key({ kind: 'root', not_after: NOW - 1 })], NOW)[0]).toMatchObject({ status: 'fail', message: `expired at ${iso(NOW - 1)}` });
    expect(rootChecks([], NOW)[0]).toMatchObject({ status: 'fail', message: 'no active root in the CA journal' });
  });

  it('warns when no successor was prepared after prepare_at, fails when activation is overdue or the key expired', () => {
    const late = key({ prepare_at: NOW - 120 });
    expect(rotationChecks([late, key({ kind: 'jwt', prepare_at: NOW - 30 })], NOW).map((c) => [c.name, c.status])).toEqual([
      ['intermediate rotation', 'warn'],
      ['JWT key rotation', 'ok'],
    ]);
    const prepared = key({ id: 'next', status: 'prepared' });
    expect(rotationChecks([late, prepared, key({ kind: 'jwt' })], NOW)[0]).toMatchObject({ status: 'ok', message: `successor prepared, due active at ${iso(late.activate_at)}` });
    expect(rotationChecks([key({ activate_at: NOW - 120 }), prepared, key({ kind: 'jwt' })], NOW)[0].status).toBe('fail');
    expect(rotationChecks([key({ not_after: NOW }), key({ kind: 'jwt' })], NOW)[0]).toMatchObject({ status: 'fail', message: `the active key k expired at ${iso(NOW)}` });
    expect(rotationChecks([key({ kind: 'jwt' })], NOW)[0]).toMatchObject({ status: 'fail', message: 'no active key' });
  });

  it('warns on an agent behind the server bundle, unseen for 5 minutes or never; fails one unseen for an hour', () => {
    const status = (a: Agent__Output) => agentChecks([a], 3, NOW)[0]!.status;
    expect(status(agent({}))).toBe('ok');
    expect(agentChecks([agent({ bundle_sequence: 2 })], 3, NOW)[0]).toMatchObject({ status: 'warn', message: `seen 30s ago, bundle 2/3, SVID until ${iso(NOW + 1800)}` });
    expect(status(agent({ last_seen_at: NOW - 301 }))).toBe('warn');
    expect(status(agent({ last_seen_at: NOW - 3601 }))).toBe('fail');
    expect(agentChecks([agent({ last_seen_at: 0 })], 3, NOW)[0]).toMatchObject({ status: 'warn', message: `never reported, SVID until ${iso(NOW + 1800)}` });
    expect(agentChecks([agent({ evicted: true })], 3, NOW)).toEqual([{ category: 'agents', name: 'agents', status: 'ok', message: 'no attested agents', hint: '' }]);
  });

  it.each<[number, string]>([
    [2000, 'ok'],
    [-2001, 'warn'],
    [10_000, 'warn'],
    [-10_001, 'fail'],
  ])('clock skew of %i ms is %s', (skew, status) => {
    const checks = agentChecks([agent({}), agent({ spiffe_id: 'spiffe://td/anchorage/agent/join_token/b', clock_skew_ms: skew })], 3, NOW);
    expect(checks.at(-1)).toMatchObject({ name: 'clock skew', status, message: `at most ${skew} ms (agent − server), spiffe://td/anchorage/agent/join_token/b` });
  });

  function rel(over: Partial<FederationRelationship__Output>): FederationRelationship__Output {
    return {
      trust_domain: 'peer.test',
      bundle_endpoint_url: 'https://peer.test/bundle',
      profile: 'https_web',
      endpoint_spiffe_id: '',
      web_ca_pem: '',
      created_at: NOW - DAY,
      updated_at: NOW - DAY,
      last_attempt_at: NOW - 10,
      last_success_at: NOW - 10,
      last_error: '',
      last_error_reason: '',
      last_error_at: 0,
      consecutive_failures: 0,
      next_refresh_at: NOW + 290,
      bundle: { trust_domain: 'peer.test', document: '{}', sequence: 2, refresh_hint: 300, updated_at: NOW - 10, keys: [{ use: 'x509-svid', id: 'root', not_after: NOW + 365 * DAY }], source: 'endpoint', last_refresh: NOW - 10, last_error: '', last_error_at: 0 },
      ...over,
    } as FederationRelationship__Output;
  }

  it('passes a fresh federated bundle; warns after two refresh hints, fails after five; warns on the last error; fails an expired authority', () => {
    const one = (r: FederationRelationship__Output) => federationChecks([r], NOW)[0]!;
    expect(one(rel({}))).toMatchObject({ status: 'ok', message: `fetched 10s ago (refresh hint 300s), soonest authority expires ${iso(NOW + 365 * DAY)}` });
    expect(one(rel({ last_success_at: NOW - 601 })).status).toBe('warn');
    expect(one(rel({ last_success_at: NOW - 1501 })).status).toBe('fail');
    const failing = one(rel({ last_error: 'connection refused', last_error_reason: 'fetch', last_error_at: NOW - 5, consecutive_failures: 2 }));
    expect(failing).toMatchObject({ status: 'warn', hint: '2 refreshes in a row failed' });
    expect(failing.message).toContain('last error fetch: connection refused');
    const expired = rel({});
    expired.bundle!.keys = [{ use: 'x509-svid', id: 'old', not_after: NOW - 1 }];
    expect(one(expired)).toMatchObject({ status: 'fail' });
  });
});

describe('anchorage check: the authority lifecycle', () => {
  const auth = (over: Partial<Authority__Output>): Authority__Output => ({
    id: 'x', kind: 'x509', status: 'old', tainted: false, revoked: false, fingerprint: 'f', kid: '', subject: '', not_before: NOW - DAY, not_after: NOW + DAY,
    issuer_id: 'root', key_id: 'label', tainted_at: 0, revoked_at: 0, published_sequence: 0, agents_holding: -1, server_id: '', ...over,
  });
  const list = (authorities: Authority__Output[], lagging: ListAuthoritiesResponse__Output['lagging'] = [], agents = 2): ListAuthoritiesResponse__Output => ({ authorities, bundle_sequence: 7, agents, lagging });
  const none = list([]);

  it('says nothing when no authority is tainted and no root rotation is under way', () => {
    expect(authorityChecks({ x509: list([auth({ status: 'active' })]), jwt: none, root: list([auth({ kind: 'root', status: 'active' })]) }, NOW)).toEqual([]);
  });

  it('warns on a tainted authority that is still trusted, not on a revoked one', () => {
    const checks = authorityChecks(
      { x509: list([auth({ id: 'x509-a', tainted: true, tainted_at: NOW - 7200 }), auth({ id: 'x509-b', tainted: true, revoked: true })]), jwt: list([auth({ id: 'jwt-a', kind: 'jwt', tainted: true, tainted_at: NOW - 30 })]), root: none },
      NOW,
    );
    expect(checks.map((c) => [c.name, c.status, c.message])).toEqual([
      ['tainted x509 authority', 'warn', 'x509-a was tainted 2h ago and is still trusted'],
      ['tainted jwt authority', 'warn', 'jwt-a was tainted 30s ago and is still trusted'],
    ]);
    expect(checks[1]!.hint).toBe('revoke it once its tokens are no longer needed: anchorage authority jwt revoke --id jwt-a');
  });

  it('reports a root rotation: ok while agents catch up, a warning once they lag for an hour, and names them', () => {
    const lag = [{ spiffe_id: 'spiffe://td/anchorage/agent/join_token/slow', bundle_sequence: 6, last_seen_at: NOW - 10 }];
    const fresh = authorityChecks({ x509: none, jwt: none, root: list([auth({ kind: 'root', status: 'active' }), auth({ id: 'root-2', kind: 'root', status: 'prepared', not_before: NOW - 60 })], lag) }, NOW);
    expect(fresh).toEqual([
      { category: 'ca', name: 'root rotation', status: 'ok', message: 'root root-2 is prepared, not active; 1 of 2 agents hold every published root', hint: 'agents lagging: spiffe://td/anchorage/agent/join_token/slow (anchorage authority root list)' },
    ]);
    const stale = authorityChecks({ x509: none, jwt: none, root: list([auth({ kind: 'root', status: 'active' }), auth({ id: 'root-2', kind: 'root', status: 'prepared', not_before: NOW - 3601 })], lag) }, NOW);
    expect(stale[0]!.status).toBe('warn');
    const ready = authorityChecks({ x509: none, jwt: none, root: list([auth({ kind: 'root', status: 'active' }), auth({ id: 'root-2', kind: 'root', status: 'prepared', not_before: NOW - 3601 })]) }, NOW);
    expect(ready[0]).toMatchObject({ status: 'ok', hint: 'every agent holds it: anchorage authority root activate' });
  });
});
