import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { loadAgentConfig, parseAgentConfig, serverAddressesOf } from './config.js';
import { emptyState, ensureDataDir, loadState, saveState, STATE_FILE } from './state.js';

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

describe('agent config', () => {
  it('applies defaults and resolves paths', () => {
    const c = parseAgentConfig(good, 'agent.yaml', '/etc/anchorage');
    expect(c.data_dir).toBe('/etc/anchorage/agent');
    expect(c.socket_path).toBe('/run/anchorage-agent/public/api.sock');
    expect(c.socket_mode).toBe(0o777);
    expect(c.workload_attestors).toEqual([{ type: 'unix', hash_binary: true, max_hash_bytes: 256 * 1024 * 1024 }]);
    expect(c).not.toHaveProperty('attestor');
    expect(c.jwt_cache_max_bytes).toBe(64 * 1024 * 1024);
    expect(parseAgentConfig({ ...good, jwt_cache_max_bytes: 1_048_576 }, 'agent.yaml', '/').jwt_cache_max_bytes).toBe(1_048_576);
    expect(parseAgentConfig({ ...good, jwt_cache_max_bytes: 0 }, 'agent.yaml', '/').jwt_cache_max_bytes).toBe(0);
    expect(c.workload_api).toEqual({}); // the Workload API's defaults (workload-api/server.ts)
  });

  it('takes server_address as one host:port or a list of them, in order', () => {
    const one = parseAgentConfig(good, 'agent.yaml', '/');
    expect(one.server_address).toBe('127.0.0.1:8081');
    expect(serverAddressesOf(one)).toEqual(['127.0.0.1:8081']);
    const list = parseAgentConfig({ ...good, server_address: ['h2.example:8081', '[::1]:8082', '10.0.0.1:8081'] }, 'agent.yaml', '/');
    expect(serverAddressesOf(list)).toEqual(['h2.example:8081', '[::1]:8082', '10.0.0.1:8081']);
    // Exactly one line per bad address.
    expect(errorOf({ ...good, server_address: 'nowhere' })).toBe('config: agent.yaml: server_address: must be host:port');
    expect(errorOf({ ...good, server_address: ['h1:8081', 'h2', 'h3:99999'] })).toBe(
      'config: agent.yaml: server_address.1: must be host:port\nagent.yaml: server_address.2: must be host:port with a port from 1 to 65535',
    );
    expect(errorOf({ ...good, server_address: [] })).toBe('config: agent.yaml: server_address: must list at least one host:port');
    const sixteen = Array.from({ length: 16 }, (_, i) => `h${i}:8081`);
    expect(serverAddressesOf(parseAgentConfig({ ...good, server_address: sixteen }, 'agent.yaml', '/'))).toEqual(sixteen);
  });

  it('takes the Workload API connection caps', () => {
    const c = parseAgentConfig({ ...good, workload_api: { max_connections: 100, max_connections_per_uid: 10 } }, 'agent.yaml', '/etc/anchorage');
    expect(c.workload_api).toEqual({ max_connections: 100, max_connections_per_uid: 10 });
    // one key alone keeps the other's default
    expect(parseAgentConfig({ ...good, workload_api: { max_connections_per_uid: 64 } }, 'agent.yaml', '/').workload_api).toEqual({ max_connections_per_uid: 64 });
  });

  it('takes workload_attestors by type, and the older attestor block as one unix entry', () => {
    const listed = parseAgentConfig({ ...good, workload_attestors: [{ type: 'unix', hash_binary: false }] }, 'agent.yaml', '/');
    expect(listed.workload_attestors).toEqual([{ type: 'unix', hash_binary: false, max_hash_bytes: 256 * 1024 * 1024 }]);
    const older = parseAgentConfig({ ...good, attestor: { max_hash_bytes: 1024 } }, 'agent.yaml', '/');
    expect(older.workload_attestors).toEqual([{ type: 'unix', hash_binary: true, max_hash_bytes: 1024 }]);
    expect(older).not.toHaveProperty('attestor');
  });

  it.each<[string, unknown, string]>([
    ['bad server address', { ...good, server_address: 'nowhere' }, 'agent.yaml: server_address: must be host:port'],
    ['port 0', { ...good, server_address: 'h1:0' }, 'agent.yaml: server_address: must be host:port with a port from 1 to 65535'],
    ['port above 65535', { ...good, server_address: ['h1:8081', 'h2:65536'] }, 'agent.yaml: server_address.1: must be host:port with a port from 1 to 65535'],
    ['no server address', { ...good, server_address: undefined }, 'agent.yaml: server_address: is required'],
    ['an empty server list', { ...good, server_address: [] }, 'agent.yaml: server_address: must list at least one host:port'],
    ['a bad item in the server list', { ...good, server_address: ['h1:8081', 'h2'] }, 'agent.yaml: server_address.1: must be host:port'],
    ['a non-string item in the server list', { ...good, server_address: ['h1:8081', 8081] }, 'agent.yaml: server_address.1: Invalid input: expected string, received number'],
    ['a duplicate in the server list', { ...good, server_address: ['h1:8081', 'h2:8081', 'H1:8081'] }, 'agent.yaml: server_address.2: "H1:8081" is listed more than once'],
    [
      'too many servers',
      { ...good, server_address: Array.from({ length: 17 }, (_, i) => `h${i}:8081`) },
      'agent.yaml: server_address: must list at most 16 servers',
    ],
    ['a server address of the wrong type', { ...good, server_address: { host: 'h1', port: 8081 } }, 'agent.yaml: server_address: must be host:port or a list of host:port'],
    ['a number as server address', { ...good, server_address: 8081 }, 'agent.yaml: server_address: must be host:port or a list of host:port'],
    ['bad join token', { ...good, join_token: 'abc' }, 'agent.yaml: join_token: must be a join token from "anchorage token create"'],
    ['both bootstrap modes', { ...good, trust_bundle_file: 'b.pem' }, 'agent.yaml: (top level): give trust_bundle_file or insecure_bootstrap, not both'],
    ['unknown key', { ...good, sokcet_path: '/x' }, 'agent.yaml: (top level): unknown key(s): sokcet_path'],
    ['bad socket mode', { ...good, socket_mode: 'rw' }, 'agent.yaml: socket_mode: must be an octal file mode such as "0777"'],
    ['bad trust domain', { ...good, trust_domain: 'A B' }, 'agent.yaml: trust_domain: spiffeid: '],
    ['negative jwt cache bound', { ...good, jwt_cache_max_bytes: -1 }, 'agent.yaml: jwt_cache_max_bytes: must not be negative'],
    ['fractional jwt cache bound', { ...good, jwt_cache_max_bytes: 1.5 }, 'agent.yaml: jwt_cache_max_bytes: must be a whole number of bytes'],
    ['jwt cache bound as a string', { ...good, jwt_cache_max_bytes: '64MiB' }, 'agent.yaml: jwt_cache_max_bytes: must be a whole number of bytes'],
    ['huge jwt cache bound', { ...good, jwt_cache_max_bytes: 2 ** 60 }, 'agent.yaml: jwt_cache_max_bytes: is too large'],
    ['zero max_connections', { ...good, workload_api: { max_connections: 0 } }, 'agent.yaml: workload_api.max_connections: Too small: expected number to be >=1'],
    ['fractional per-uid cap', { ...good, workload_api: { max_connections_per_uid: 1.5 } }, 'agent.yaml: workload_api.max_connections_per_uid: Invalid input: expected int, received number'],
    ['string cap', { ...good, workload_api: { max_connections: '4096' } }, 'agent.yaml: workload_api.max_connections: Invalid input: expected number, received string'],
    ['huge cap', { ...good, workload_api: { max_connections: 2_000_000 } }, 'agent.yaml: workload_api.max_connections: Too big: expected number to be <=1000000'],
    [
      'per-uid cap above the global one',
      { ...good, workload_api: { max_connections: 100, max_connections_per_uid: 101 } },
      'agent.yaml: workload_api: max_connections_per_uid must not exceed max_connections',
    ],
    ['unknown workload_api key', { ...good, workload_api: { max_conections: 10 } }, 'agent.yaml: workload_api: unknown key(s): max_conections'],
  ])('rejects %s', (_n, doc, expected) => {
    expect(errorOf(doc)).toContain(expected);
  });

  it('takes the SDS resource names and the validation switch, SPIRE\'s by default', () => {
    expect(parseAgentConfig(good, 'agent.yaml', '/').sds).toEqual({ defaultSvidName: 'default', defaultBundleName: 'ROOTCA', defaultAllBundlesName: 'ALL', disableSpiffeCertValidation: false });
    const c = parseAgentConfig({ ...good, sds: { default_svid_name: 'svid', default_bundle_name: 'own', default_all_bundles_name: 'every', disable_spiffe_cert_validation: true } }, 'agent.yaml', '/');
    expect(c.sds).toEqual({ defaultSvidName: 'svid', defaultBundleName: 'own', defaultAllBundlesName: 'every', disableSpiffeCertValidation: true });
    expect(parseAgentConfig({ ...good, sds: { default_bundle_name: 'own' } }, 'agent.yaml', '/').sds.defaultSvidName).toBe('default');
  });

  it.each<[string, unknown, string]>([
    ['an empty name', { default_svid_name: '' }, 'agent.yaml: sds.default_svid_name: must not be empty'],
    ['a SPIFFE ID as a name', { default_bundle_name: 'spiffe://example.org' }, 'agent.yaml: sds.default_bundle_name: must not start with "spiffe:" (SPIFFE IDs name SVIDs and bundles already)'],
    ['a control character', { default_all_bundles_name: 'A\nLL' }, 'agent.yaml: sds.default_all_bundles_name: must not contain control characters'],
    ['a long name', { default_svid_name: 'x'.repeat(257) }, 'agent.yaml: sds.default_svid_name: must be at most 256 characters'],
    ['a name that is not a string', { default_svid_name: 7 }, 'agent.yaml: sds.default_svid_name: Invalid input: expected string, received number'],
    ['two equal names', { default_svid_name: 'ALL' }, 'agent.yaml: sds: default_svid_name, default_bundle_name and default_all_bundles_name must differ'],
    ['a switch that is not a boolean', { disable_spiffe_cert_validation: 'yes' }, 'agent.yaml: sds.disable_spiffe_cert_validation: Invalid input: expected boolean, received string'],
    ['an unknown key', { default_name: 'x' }, 'agent.yaml: sds: unknown key(s): default_name'],
  ])('rejects sds with %s', (_n, sds, expected) => {
    expect(errorOf({ ...good, sds })).toBe(`config: ${expected}`);
  });

  const unix = (extra: Record<string, unknown> = {}) => ({ type: 'unix', ...extra });
  it.each<[string, unknown, string]>([
    ['an unknown attestor type', [unix(), { type: 'k8s' }], 'agent.yaml: workload_attestors.1.type: unknown workload attestor type "k8s"; known types: unix'],
    ['an entry without a type', [{ hash_binary: true }], 'agent.yaml: workload_attestors.0.type: must be a string naming the kind of attestor'],
    ['a type that is not a string', [{ type: 7 }], 'agent.yaml: workload_attestors.0.type: must be a string naming the kind of attestor'],
    ['an entry that is not a mapping', ['unix'], 'agent.yaml: workload_attestors.0: must be a mapping such as { type: unix }'],
    ['a list that is not a list', { type: 'unix' }, 'agent.yaml: workload_attestors: must be a list of attestors such as [{ type: unix }]'],
    ['an empty list', [], 'agent.yaml: workload_attestors: must name at least one attestor'],
    ['one type twice', [unix(), unix({ hash_binary: false })], 'agent.yaml: workload_attestors.1.type: "unix" is configured more than once; each type runs once'],
    ['an unknown unix option', [unix({ hashbinary: false })], 'agent.yaml: workload_attestors.0: unknown key(s): hashbinary'],
    ['a hash_binary that is not a boolean', [unix({ hash_binary: 'yes' })], 'agent.yaml: workload_attestors.0.hash_binary: must be true or false'],
    ['a negative max_hash_bytes', [unix({ max_hash_bytes: -1 })], 'agent.yaml: workload_attestors.0.max_hash_bytes: must not be negative'],
    ['a fractional max_hash_bytes', [unix({ max_hash_bytes: 1.5 })], 'agent.yaml: workload_attestors.0.max_hash_bytes: must be a whole number of bytes'],
    ['a max_hash_bytes as a string', [unix({ max_hash_bytes: '64MiB' })], 'agent.yaml: workload_attestors.0.max_hash_bytes: must be a whole number of bytes'],
  ])('rejects workload_attestors with %s', (_n, list, expected) => {
    expect(errorOf({ ...good, workload_attestors: list })).toBe(`config: ${expected}`);
  });

  it.each<[string, unknown, string]>([
    [
      'both attestor forms',
      { ...good, workload_attestors: [unix()], attestor: { hash_binary: true } },
      'agent.yaml: (top level): give workload_attestors or attestor, not both (attestor is the older form of workload_attestors: [{ type: unix }])',
    ],
    ['an unknown key in the older attestor block', { ...good, attestor: { type: 'unix' } }, 'agent.yaml: attestor: unknown key(s): type'],
    [
      'a huge max_hash_bytes in the older attestor block',
      { ...good, attestor: { max_hash_bytes: 2 ** 60 } },
      'agent.yaml: attestor.max_hash_bytes: must be a whole number of bytes\nagent.yaml: attestor.max_hash_bytes: is too large',
    ],
  ])('rejects %s', (_n, doc, expected) => {
    expect(errorOf(doc)).toBe(`config: ${expected}`);
  });

  it('names an unreadable file', () => {
    expect(() => loadAgentConfig('/nonexistent/agent.yaml')).toThrow('config: cannot read /nonexistent/agent.yaml: ENOENT');
  });
});

describe('agent state', () => {
  it('round-trips through a 0600 file in a 0700 dir, refusing another trust domain or garbage', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'agent-state-')), 'data');
    try {
      ensureDataDir(dir);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(loadState(dir, 'example.org')).toEqual(emptyState('example.org'));
      const s = { ...emptyState('example.org'), bundle: '{"keys":[]}' };
      saveState(dir, s);
      expect(statSync(join(dir, STATE_FILE)).mode & 0o777).toBe(0o600);
      expect(loadState(dir, 'example.org')).toEqual(s);
      expect(() => loadState(dir, 'other.org')).toThrow(/belongs to trust domain "example.org", not "other.org"/);
      writeFileSync(join(dir, STATE_FILE), '{not json');
      expect(() => loadState(dir, 'example.org')).toThrow(/is not readable agent state/);
      writeFileSync(join(dir, STATE_FILE), '{"version":3}');
      expect(() => loadState(dir, 'example.org')).toThrow(/has an unknown format/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('agent config: monitoring', () => {
  it('has no metrics listener and no log_format unless given', () => {
    const c = parseAgentConfig(good, 'agent.yaml', '/etc/anchorage');
    expect([c.metrics, c.log_format]).toEqual([undefined, undefined]);
    const on = parseAgentConfig({ ...good, metrics: { address: 'localhost:0' }, log_format: 'text' }, 'agent.yaml', '/etc/anchorage');
    expect([on.metrics, on.log_format]).toEqual([{ address: 'localhost:0' }, 'text']);
  });

  it.each<[string, unknown, string]>([
    ['a log_format of pretty', { log_format: 'pretty' }, 'log_format: must be text or json'],
    ['a metrics address that is a number', { metrics: { address: 9988 } }, 'metrics.address: Invalid input: expected string, received number'],
    ['a metrics address without a host', { metrics: { address: ':9988' } }, 'metrics.address: must be host:port'],
    ['a metrics block without an address', { metrics: {} }, 'metrics.address: Invalid input: expected string, received undefined'],
  ])('refuses %s with one line naming the key', (_n, extra, expected) => {
    expect(errorOf({ ...good, ...(extra as object) })).toBe(`config: agent.yaml: ${expected}`);
  });
});
