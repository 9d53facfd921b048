import { describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { parseServerConfig, tcpLimits } from './config.js';

const minimal = {
  trust_domain: 'example.org',
  data_dir: 'data',
  key_manager: { type: 'pkcs11', module: '/usr/lib/softhsm/libsofthsm2.so', token_label: 'anchorage', pin_env: 'PIN' },
};

function errorOf(doc: unknown): string {
  try {
    parseServerConfig(doc, 'server.yaml', '/etc/anchorage');
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return (err as AnchorageError).message;
  }
  throw new Error('expected an error');
}

describe('server config', () => {
  it('applies defaults and resolves relative paths against the config directory', () => {
    const cfg = parseServerConfig(minimal, 'server.yaml', '/etc/anchorage');
    expect(cfg.trust_domain.name).toBe('example.org');
    expect(cfg.data_dir).toBe('/etc/anchorage/data');
    expect(cfg.admin_socket).toBe('/run/anchorage-server/private/admin.sock');
    expect(cfg.admin_socket_mode).toBe(0o600);
    expect(cfg.datastore).toEqual({ type: 'sqlite', path: '/etc/anchorage/data/datastore.sqlite3' });
    expect(cfg.ca).toMatchObject({ ttl: 86400, key_type: 'ec-p256', root: { type: 'self-signed', ttl: 3650 * 86400 } });
    expect([cfg.x509_svid_ttl, cfg.jwt_svid_ttl, cfg.bundle_refresh_hint]).toEqual([3600, 300, 300]);
    expect(cfg.key_manager).toMatchObject({ type: 'pkcs11', sessions: 4 });
  });

  it('enables the join_token node attestor by default, and takes the list or the mapping from node_attestors', () => {
    const parse = (v: unknown) => parseServerConfig({ ...minimal, node_attestors: v }, 'server.yaml', '/etc/anchorage').node_attestors;
    expect(parseServerConfig(minimal, 'server.yaml', '/etc/anchorage').node_attestors).toEqual({ join_token: {} });
    expect(parse(['join_token'])).toEqual({ join_token: {} });
    expect(parse({ join_token: null })).toEqual({ join_token: {} });
    expect(
      parse({
        join_token: {},
        tpm: { ek_ca_dir: 'ek-cas', pcrs: [{ bank: 'sha256', indices: [7, 0] }] },
        x509pop: { ca_bundle_file: '/etc/pki/nodes.pem' },
      }),
    ).toEqual({
      join_token: {},
      tpm: { ek_ca_dir: '/etc/anchorage/ek-cas', pcrs: [{ bank: 'sha256', indices: [0, 7] }] },
      x509pop: { ca_bundle_file: '/etc/pki/nodes.pem' },
    });
    expect(parse({ tpm: { ek_hashes: ['ab'.repeat(32)], pcrs: [{ bank: 'sha1', indices: [0] }] } })).toEqual({
      tpm: { ek_hashes: ['ab'.repeat(32)], pcrs: [{ bank: 'sha1', indices: [0] }] },
    });
  });

  const pcrs = [{ bank: 'sha256', indices: [0] }];
  it.each<[string, unknown, string]>([
    ['an unknown node attestor', ['tpm_devid'], 'config: server.yaml: node_attestors.0: unknown node attestor (known: join_token, tpm, x509pop)'],
    ['an empty list', [], 'config: server.yaml: node_attestors: list at least one node attestor'],
    ['a node attestor listed twice', ['join_token', 'join_token'], 'config: server.yaml: node_attestors: a node attestor is listed twice'],
    ['tpm in the list form', ['tpm'], 'config: server.yaml: node_attestors.0: tpm needs settings: give node_attestors as a mapping, e.g. { tpm: { ... } }'],
    ['a string', 'join_token', 'config: server.yaml: node_attestors: Invalid input: expected object, received string'],
    ['an empty mapping', {}, 'config: server.yaml: node_attestors: enable at least one node attestor'],
    ['an unknown type in the mapping', { sev: {} }, 'config: server.yaml: node_attestors: unknown key(s): sev'],
    ['settings for join_token', { join_token: { ttl: 1 } }, 'config: server.yaml: node_attestors.join_token: unknown key(s): ttl'],
    ['tpm without pcrs', { tpm: { ek_ca_dir: 'd' } }, 'config: server.yaml: node_attestors.tpm.pcrs: is required'],
    ['tpm without EK trust', { tpm: { pcrs } }, 'config: server.yaml: node_attestors.tpm: give ek_ca_dir, ek_hashes or both'],
    ['an empty ek_ca_dir', { tpm: { ek_ca_dir: '', pcrs } }, 'config: server.yaml: node_attestors.tpm.ek_ca_dir: Too small: expected string to have >=1 characters'],
    ['a bad EK hash', { tpm: { ek_hashes: ['AB'], pcrs } }, 'config: server.yaml: node_attestors.tpm.ek_hashes.0: must be the SHA-256 (64 lower-case hex digits) of an EK public key (DER SubjectPublicKeyInfo)'],
    ['no PCR bank', { tpm: { ek_ca_dir: 'd', pcrs: [] } }, 'config: server.yaml: node_attestors.tpm.pcrs: name at least one PCR bank'],
    ['an unknown bank', { tpm: { ek_ca_dir: 'd', pcrs: [{ bank: 'md5', indices: [0] }] } }, 'config: server.yaml: node_attestors.tpm.pcrs.0.bank: Invalid option: expected one of "sha1"|"sha256"|"sha384"|"sha512"'],
    ['a PCR out of range', { tpm: { ek_ca_dir: 'd', pcrs: [{ bank: 'sha256', indices: [24] }] } }, 'config: server.yaml: node_attestors.tpm.pcrs.0.indices.0: Too big: expected number to be <=23'],
    ['a PCR twice', { tpm: { ek_ca_dir: 'd', pcrs: [{ bank: 'sha256', indices: [1, 1] }] } }, 'config: server.yaml: node_attestors.tpm.pcrs.0.indices: lists a PCR twice'],
    ['a bank twice', { tpm: { ek_ca_dir: 'd', pcrs: [...pcrs, ...pcrs] } }, 'config: server.yaml: node_attestors.tpm.pcrs: lists a bank twice'],
    ['an unknown tpm key', { tpm: { ek_ca_dir: 'd', pcrs, ek_ca_file: 'x' } }, 'config: server.yaml: node_attestors.tpm: unknown key(s): ek_ca_file'],
    ['x509pop without its bundle', { x509pop: {} }, 'config: server.yaml: node_attestors.x509pop.ca_bundle_file: is required'],
    ['x509pop with a number for its bundle', { x509pop: { ca_bundle_file: 3 } }, 'config: server.yaml: node_attestors.x509pop.ca_bundle_file: must be a file name'],
  ])('refuses %s in node_attestors with one line', (_name, value, expected) => {
    expect(errorOf({ ...minimal, node_attestors: value })).toBe(expected);
  });

  it('takes an upstream root with its files resolved', () => {
    const cfg = parseServerConfig(
      { ...minimal, ca: { root: { type: 'upstream', cert_file: 'up.pem', key_file: 'up.key' } } },
      'server.yaml',
      '/etc/anchorage',
    );
    expect(cfg.ca.root).toMatchObject({ type: 'upstream', cert_file: '/etc/anchorage/up.pem', key_file: '/etc/anchorage/up.key' });
  });

  it.each<[string, unknown, string]>([
    ['missing trust domain', { ...minimal, trust_domain: undefined }, 'server.yaml: trust_domain: '],
    ['unknown key', { ...minimal, colour: 'blue' }, 'server.yaml: (top level): unknown key(s): colour'],
    ['unknown nested key', { ...minimal, ca: { tll: '1h' } }, 'server.yaml: ca: unknown key(s): tll'],
    ['bad duration', { ...minimal, x509_svid_ttl: '1 hour' }, 'server.yaml: x509_svid_ttl: "1 hour" is not a duration'],
    ['zero duration', { ...minimal, jwt_svid_ttl: '0s' }, 'server.yaml: jwt_svid_ttl: "0s" must be greater than zero'],
    ['bad agent svid ttl', { ...minimal, agent_svid_ttl: 'soon' }, 'server.yaml: agent_svid_ttl: "soon" is not a duration'],
    ['agent svid ttl beyond the CA', { ...minimal, agent_svid_ttl: '48h' }, 'server.yaml: agent_svid_ttl: must be shorter than ca.ttl'],
    ['bad socket mode', { ...minimal, admin_socket_mode: '0999' }, 'server.yaml: admin_socket_mode: must be an octal file mode such as "0600"'],
    ['server id with capitals', { ...minimal, server_id: 'Server-1' }, 'server.yaml: server_id: must be 1–63 lower-case letters, digits or hyphens, starting with a letter or digit'],
    ['server id too long', { ...minimal, server_id: 'a'.repeat(64) }, 'server.yaml: server_id: must be 1–63 lower-case letters'],
    ['server id not a string', { ...minimal, server_id: 7 }, 'server.yaml: server_id: '],
    ['bad bind address', { ...minimal, bind_address: 'localhost' }, 'server.yaml: bind_address: must be host:port'],
    ['bad port', { ...minimal, bind_address: '127.0.0.1:70000' }, 'server.yaml: bind_address: port must be between 0 (any free port) and 65535'],
    ['both pin sources', { ...minimal, key_manager: { ...minimal.key_manager, pin_file: 'p' } }, 'server.yaml: key_manager: exactly one of pin_env or pin_file is required'],
    ['no pin source', { ...minimal, key_manager: { type: 'pkcs11', module: 'm', token_label: 't' } }, 'server.yaml: key_manager: exactly one of pin_env or pin_file is required'],
    ['bad key manager type', { ...minimal, key_manager: { type: 'tpm' } }, 'server.yaml: key_manager.type: '],
    ['bad key type', { ...minimal, ca: { key_type: 'rsa-2048' } }, 'server.yaml: ca.key_type: '],
    ['upstream without a key', { ...minimal, ca: { root: { type: 'upstream', cert_file: 'c.pem' } } }, 'server.yaml: ca.root: exactly one of key_file or key_label is required'],
    ['svid ttl not below the CA ttl', { ...minimal, ca: { ttl: '1h' }, x509_svid_ttl: '1h' }, 'server.yaml: x509_svid_ttl: must be shorter than ca.ttl'],
    ['root ttl not above the CA ttl', { ...minimal, ca: { ttl: '30d', root: { type: 'self-signed', ttl: '30d' } } }, 'server.yaml: ca.root.ttl: must be longer than ca.ttl'],
    ['a list instead of a mapping', ['a'], 'server.yaml: (top level): '],
  ])('rejects %s, naming the key', (_name, doc, expected) => {
    expect(errorOf(doc)).toContain(expected);
  });

  describe('federation.bundle_endpoint', () => {
    const be = (endpoint: unknown) => ({ ...minimal, federation: { bundle_endpoint: endpoint } });

    it('defaults refresh_hint to bundle_refresh_hint and resolves the files', () => {
      const web = parseServerConfig(
        be({ address: '0.0.0.0:8443', profile: 'https_web', cert_file: 'tls/chain.pem', key_file: '/keys/web.key' }),
        'server.yaml',
        '/etc/anchorage',
      );
      expect(web.federation?.bundle_endpoint).toEqual({
        address: '0.0.0.0:8443',
        profile: 'https_web',
        refresh_hint: 300,
        cert_file: '/etc/anchorage/tls/chain.pem',
        key_file: '/keys/web.key',
        handshake_timeout: 10,
        max_connections: 256,
        max_connections_per_ip: 32,
      });
      const spiffe = parseServerConfig(
        { ...be({ address: '[::1]:0', profile: 'https_spiffe', refresh_hint: '90s' }), bundle_refresh_hint: '10m' },
        'server.yaml',
        '/etc/anchorage',
      );
      expect(spiffe.federation?.bundle_endpoint).toEqual({
        address: '[::1]:0',
        profile: 'https_spiffe',
        refresh_hint: 90,
        handshake_timeout: 10,
        max_connections: 256,
        max_connections_per_ip: 32,
      });
      expect(spiffe.bundle_refresh_hint).toBe(600);
      expect(parseServerConfig(minimal, 'server.yaml', '/etc/anchorage').federation).toEqual({ bundle_endpoint: undefined, refresh: { min_interval: 30, max_interval: 3600, default_interval: 300, fetch_timeout: 10 } });
    });

    it.each<[string, unknown, string]>([
      ['missing address', be({ profile: 'https_spiffe' }), 'server.yaml: federation.bundle_endpoint.address: is required'],
      ['a bad address', be({ address: 'localhost', profile: 'https_spiffe' }), 'server.yaml: federation.bundle_endpoint.address: must be host:port'],
      ['a bad port', be({ address: 'localhost:99999', profile: 'https_spiffe' }), 'server.yaml: federation.bundle_endpoint.address: port must be between 0 (any free port) and 65535'],
      ['missing profile', be({ address: '127.0.0.1:8443' }), 'server.yaml: federation.bundle_endpoint.profile: is required'],
      ['a bad profile', be({ address: '127.0.0.1:8443', profile: 'https' }), 'server.yaml: federation.bundle_endpoint.profile: must be https_spiffe or https_web'],
      ['a bad refresh hint', be({ address: '127.0.0.1:8443', profile: 'https_spiffe', refresh_hint: '5 min' }), 'server.yaml: federation.bundle_endpoint.refresh_hint: "5 min" is not a duration (use e.g. 30s, 15m, 1h30m, 7d)'],
      [
        'cert_file with https_spiffe',
        be({ address: '127.0.0.1:8443', profile: 'https_spiffe', cert_file: 'c.pem' }),
        'server.yaml: federation.bundle_endpoint.cert_file: only for profile https_web (https_spiffe serves the server SVID)',
      ],
      [
        'key_file with https_spiffe',
        be({ address: '127.0.0.1:8443', profile: 'https_spiffe', key_file: 'k.pem' }),
        'server.yaml: federation.bundle_endpoint.key_file: only for profile https_web (https_spiffe serves the server SVID)',
      ],
      [
        'https_web without a certificate',
        be({ address: '127.0.0.1:8443', profile: 'https_web', key_file: 'k.pem' }),
        'server.yaml: federation.bundle_endpoint.cert_file: is required for profile https_web',
      ],
      [
        'https_web without a key',
        be({ address: '127.0.0.1:8443', profile: 'https_web', cert_file: 'c.pem' }),
        'server.yaml: federation.bundle_endpoint.key_file: is required for profile https_web',
      ],
      ['an unknown key', be({ address: '127.0.0.1:8443', profile: 'https_spiffe', path: '/bundle' }), 'server.yaml: federation.bundle_endpoint: unknown key(s): path'],
      ['an unknown federation key', { ...minimal, federation: { relationships: [] } }, 'server.yaml: federation: unknown key(s): relationships'],
    ])('rejects %s with exactly one line', (_name, doc, expected) => {
      expect(errorOf(doc)).toBe(`config: ${expected}`);
    });

    it('reports both missing https_web files', () => {
      expect(errorOf(be({ address: '127.0.0.1:8443', profile: 'https_web' })).split('\n')).toEqual([
        'config: server.yaml: federation.bundle_endpoint.cert_file: is required for profile https_web',
        'server.yaml: federation.bundle_endpoint.key_file: is required for profile https_web',
      ]);
    });
  });

  describe('federation.refresh', () => {
    const refresh = (r: unknown) => ({ ...minimal, federation: { refresh: r } });
    const parse = (doc: unknown) => parseServerConfig(doc, 'server.yaml', '/etc/anchorage').federation.refresh;

    it('defaults to 30s / 1h / 5m and a 10s fetch timeout, also when given empty or in part', () => {
      const defaults = { min_interval: 30, max_interval: 3600, default_interval: 300, fetch_timeout: 10 };
      expect(parse(minimal)).toEqual(defaults);
      expect(parse({ ...minimal, federation: {} })).toEqual(defaults);
      expect(parse(refresh({}))).toEqual(defaults);
      expect(parse(refresh({ fetch_timeout: '30s' }))).toEqual({ ...defaults, fetch_timeout: 30 });
    });

    it('parses durations into seconds, bounds included', () => {
      expect(parse(refresh({ min_interval: '1s', max_interval: '24h', default_interval: '1h30m', fetch_timeout: '5m' }))).toEqual({
        min_interval: 1,
        max_interval: 86400,
        default_interval: 5400,
        fetch_timeout: 300,
      });
      expect(parse(refresh({ min_interval: '2m', max_interval: '2m', default_interval: '2m', fetch_timeout: '1s' }))).toEqual({
        min_interval: 120,
        max_interval: 120,
        default_interval: 120,
        fetch_timeout: 1,
      });
    });

    it.each<[string, unknown, string]>([
      ['a min_interval of zero', { min_interval: '0s' }, 'server.yaml: federation.refresh.min_interval: "0s" must be greater than zero'],
      ['a min_interval that is no duration', { min_interval: '30' }, 'server.yaml: federation.refresh.min_interval: "30" is not a duration (use e.g. 30s, 15m, 1h30m, 7d)'],
      ['a max_interval above 24h', { max_interval: '24h1s' }, 'server.yaml: federation.refresh.max_interval: must be at most 24h'],
      ['a default_interval below min_interval', { min_interval: '1m', default_interval: '59s' }, 'server.yaml: federation.refresh.default_interval: must be between min_interval and max_interval'],
      ['a default_interval above max_interval', { max_interval: '10m', default_interval: '10m1s' }, 'server.yaml: federation.refresh.default_interval: must be between min_interval and max_interval'],
      ['a fetch_timeout above 5m', { fetch_timeout: '5m1s' }, 'server.yaml: federation.refresh.fetch_timeout: must be between 1s and 5m'],
      ['a fetch_timeout of zero', { fetch_timeout: '0s' }, 'server.yaml: federation.refresh.fetch_timeout: "0s" must be greater than zero'],
      ['a number instead of a duration', { fetch_timeout: 10 }, 'server.yaml: federation.refresh.fetch_timeout: '],
      ['an unknown key', { interval: '5m' }, 'server.yaml: federation.refresh: unknown key(s): interval'],
    ])('rejects %s with exactly one line', (_name, r, expected) => {
      const m = errorOf(refresh(r));
      expect(m.split('\n')).toHaveLength(1);
      if (expected.endsWith(': ')) expect(m.startsWith(`config: ${expected}`), m).toBe(true);
      else expect(m).toBe(`config: ${expected}`);
    });

    it('rejects a min_interval longer than max_interval with one line', () => {
      expect(errorOf(refresh({ min_interval: '2h', max_interval: '1h' }))).toBe('config: server.yaml: federation.refresh.min_interval: must not be longer than max_interval');
    });

    it('moves the default interval into the bounds when only the bounds are given', () => {
      expect(parse(refresh({ min_interval: '10m' })).default_interval).toBe(600);
      expect(parse(refresh({ max_interval: '1m', min_interval: '10s' })).default_interval).toBe(60);
    });

    it('rejects a refresh block that is not a mapping', () => {
      const m = errorOf(refresh('5m'));
      expect(m.split('\n')).toHaveLength(1);
      expect(m.startsWith('config: server.yaml: federation.refresh: ')).toBe(true);
    });
  });

  describe('listener limits (agent_api, federation.bundle_endpoint)', () => {
    const be = (extra: object) => ({
      ...minimal,
      federation: { bundle_endpoint: { address: '127.0.0.1:8443', profile: 'https_spiffe', ...extra } },
    });

    it('defaults to a 10s handshake timeout, 1024 / 128 agent api connections and 256 / 32 bundle endpoint ones', () => {
      const cfg = parseServerConfig(be({}), 'server.yaml', '/etc/anchorage');
      expect(cfg.agent_api).toEqual({ handshake_timeout: 10, max_connections: 1024, max_connections_per_ip: 128 });
      expect(cfg.federation.bundle_endpoint).toMatchObject({ handshake_timeout: 10, max_connections: 256, max_connections_per_ip: 32 });
      expect(tcpLimits(cfg.agent_api)).toEqual({ handshakeTimeoutMs: 10_000, maxConnections: 1024, maxConnectionsPerIp: 128 });
    });

    it('takes every key, bounds included', () => {
      const cfg = parseServerConfig(
        { ...be({ handshake_timeout: '2m', max_connections: 65536, max_connections_per_ip: 65536 }), agent_api: { handshake_timeout: '1s', max_connections: 1, max_connections_per_ip: 1 } },
        'server.yaml',
        '/etc/anchorage',
      );
      expect(cfg.agent_api).toEqual({ handshake_timeout: 1, max_connections: 1, max_connections_per_ip: 1 });
      expect(cfg.federation.bundle_endpoint).toMatchObject({ handshake_timeout: 120, max_connections: 65536, max_connections_per_ip: 65536 });
    });

    it.each<[string, unknown, string]>([
      ['a handshake timeout that is not a duration', { ...minimal, agent_api: { handshake_timeout: 'fast' } }, 'config: server.yaml: agent_api.handshake_timeout: "fast" is not a duration (use e.g. 30s, 15m, 1h30m, 7d)'],
      ['a handshake timeout over 2m', { ...minimal, agent_api: { handshake_timeout: '3m' } }, 'config: server.yaml: agent_api.handshake_timeout: must be between 1s and 2m'],
      ['a handshake timeout of zero', { ...minimal, agent_api: { handshake_timeout: '0s' } }, 'config: server.yaml: agent_api.handshake_timeout: "0s" must be greater than zero'],
      ['zero connections', { ...minimal, agent_api: { max_connections: 0 } }, 'config: server.yaml: agent_api.max_connections: Too small: expected number to be >=1'],
      ['a fractional cap', { ...minimal, agent_api: { max_connections_per_ip: 1.5 } }, 'config: server.yaml: agent_api.max_connections_per_ip: Invalid input: expected int, received number'],
      ['a cap given as text', { ...minimal, agent_api: { max_connections: '100' } }, 'config: server.yaml: agent_api.max_connections: Invalid input: expected number, received string'],
      ['a cap over 65536', { ...minimal, agent_api: { max_connections: 70000 } }, 'config: server.yaml: agent_api.max_connections: Too big: expected number to be <=65536'],
      ['a per-address cap above the total', { ...minimal, agent_api: { max_connections: 10, max_connections_per_ip: 11 } }, 'config: server.yaml: agent_api.max_connections_per_ip: must not be more than max_connections'],
      ['an unknown agent_api key', { ...minimal, agent_api: { max_conns: 10 } }, 'config: server.yaml: agent_api: unknown key(s): max_conns'],
      ['a bundle endpoint per-address cap above the total', be({ max_connections: 4, max_connections_per_ip: 5 }), 'config: server.yaml: federation.bundle_endpoint.max_connections_per_ip: must not be more than max_connections'],
      ['a bundle endpoint handshake timeout of 1 hour', be({ handshake_timeout: '1h' }), 'config: server.yaml: federation.bundle_endpoint.handshake_timeout: must be between 1s and 2m'],
      ['a negative bundle endpoint cap', be({ max_connections: -1 }), 'config: server.yaml: federation.bundle_endpoint.max_connections: Too small: expected number to be >=1'],
    ])('rejects %s, with one line naming the key', (_name, doc, expected) => {
      expect(errorOf(doc)).toBe(expected);
    });
  });

  it('reports every problem at once, one per line', () => {
    const m = errorOf({ ...minimal, x509_svid_ttl: 'x', jwt_svid_ttl: 'y' });
    expect(m.split('\n')).toHaveLength(2);
  });
});

describe('server config: monitoring', () => {
  it('has no metrics listener and no log_format unless given (text on a terminal, else JSON)', () => {
    const cfg = parseServerConfig(minimal, 'server.yaml', '/etc/anchorage');
    expect(cfg.metrics).toBeUndefined();
    expect(cfg.log_format).toBeUndefined();
    const on = parseServerConfig({ ...minimal, metrics: { address: '127.0.0.1:9988' }, log_format: 'json' }, 'server.yaml', '/etc/anchorage');
    expect([on.metrics, on.log_format]).toEqual([{ address: '127.0.0.1:9988' }, 'json']);
  });

  it.each<[string, unknown, string]>([
    ['a log_format of xml', { log_format: 'xml' }, 'log_format: must be text or json'],
    ['a metrics address without a port', { metrics: { address: '127.0.0.1' } }, 'metrics.address: must be host:port'],
    ['a metrics address with a port too large', { metrics: { address: '[::1]:70000' } }, 'metrics.address: port must be between 0 (any free port) and 65535'],
    ['a metrics URL', { metrics: { address: 'http://127.0.0.1:9988/metrics' } }, 'metrics.address: must be host:port'],
    ['an unknown metrics key', { metrics: { address: '127.0.0.1:9988', path: '/m' } }, 'metrics: unknown key(s): path'],
    ['a metrics block that is a string', { metrics: '127.0.0.1:9988' }, 'metrics: Invalid input: expected object, received string'],
  ])('refuses %s with one line naming the key', (_n, extra, expected) => {
    expect(errorOf({ ...minimal, ...(extra as object) })).toBe(`config: server.yaml: ${expected}`);
  });
});
