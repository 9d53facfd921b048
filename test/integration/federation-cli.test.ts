import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpiffeBundle, X509Bundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import type { FederatedBundle__Output } from '../../proto/gen/anchorage/admin/v1/FederatedBundle.js';
import type { FederationRelationship__Output } from '../../proto/gen/anchorage/admin/v1/FederationRelationship.js';
import { cli, startServerProcess, tempDir, writeFile, type CliResult, type ServerProcess } from '../helpers/process.js';
import { createSoftHsmToken, type SoftHsmToken, writePkcs11ServerConfig } from '../helpers/softhsm.js';

// `anchorage federation ...` against a real `anchorage server run` on SoftHSM2.

const TD = 'prod.example';
const PEER = 'peer.test';

let token: SoftHsmToken;
let tmp: { dir: string; cleanup: () => void };
let server: ServerProcess;
let socket: string;
let env: NodeJS.ProcessEnv;
/** The peer's CA certificate (PEM, URI SAN spiffe://peer.test), as its `anchorage bundle show` would print it. */
let peerPem: string;
let peerPemFile: string;
let closedPort: number;

function run(args: string[]): CliResult {
  return cli([...args, '--socket', socket], env);
}

function ok(args: string[]): string {
  const r = run(args);
  if (r.code !== 0) throw new Error(`anchorage ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  expect(r.stderr).toBe('');
  return r.stdout;
}

function json<T>(args: string[]): T {
  return JSON.parse(ok([...args, '--json'])) as T;
}

/** A refusal: the exit code and exactly one line (usage errors add the help hint on a second line). */
function refused(r: CliResult, code: number, line: string, what = line): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(code);
  expect(r.stdout, what).toBe('');
  if (code === 2) {
    const [first, second, ...more] = r.stderr.split('\n');
    expect([first, more], what).toEqual([line, ['']]);
    expect(second, what).toMatch(/^\(run "anchorage federation( [a-z]+)? --help" for usage\)$/);
  }
  else expect(r.stderr, what).toBe(`${line}\n`);
}

// What `--json` prints is the admin API's message as the CLI received it.
type RelationshipJson = FederationRelationship__Output;
type FederatedBundleJson = FederatedBundle__Output;

beforeAll(async () => {
  token = createSoftHsmToken('anchorage-fed-cli', '2468');
  tmp = tempDir('anchorage-fed-cli-');
  env = { ...token.env };
  socket = join(tmp.dir, 'admin.sock');
  const config = writePkcs11ServerConfig(token, { dir: tmp.dir, trustDomain: TD, socket });
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'peer.key', '-out', 'peer.pem', '-days', '2',
      '-subj', '/O=peer.test', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-addext', 'subjectAltName=URI:spiffe://peer.test'],
    { cwd: tmp.dir, stdio: 'pipe' },
  );
  peerPemFile = join(tmp.dir, 'peer.pem');
  peerPem = readFileSync(peerPemFile, 'utf8');
  // Port 1 on loopback: below the ephemeral range, so no concurrent test can bind it (a port from
  // freePort() could be taken by another test's server between here and the fetch).
  closedPort = 1;
  server = await startServerProcess(config, socket, env);
});

afterAll(async () => {
  await server?.kill('SIGTERM');
  tmp?.cleanup();
  token?.cleanup();
});

describe('anchorage federation', () => {
  it('lists nothing at first', () => {
    expect(ok(['federation', 'list'])).toBe('No federation relationships\n');
    expect(json<unknown[]>(['federation', 'list'])).toEqual([]);
  });

  it('refuses bad input to create with the exit code and one line each, creating nothing', () => {
    const garbage = writeFile(join(tmp.dir, 'garbage.json'), 'this is not a bundle\n');
    const badPem = writeFile(join(tmp.dir, 'bad.pem'), '-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n');
    const noKeys = writeFile(join(tmp.dir, 'nokeys.json'), '{"keys":[]}');
    const url = `https://127.0.0.1:${closedPort}/`;
    const spiffe = ['--profile', 'https_spiffe', '--endpoint-id', 'spiffe://peer.test/be'];
    const cases: Array<[string[], number, string]> = [
      [['--url', url, ...spiffe], 2, 'anchorage: --trust-domain is required'],
      [['--trust-domain', PEER, ...spiffe], 2, 'anchorage: --url is required'],
      [['--trust-domain', PEER, '--url', url], 2, 'anchorage: --profile is required'],
      [['--trust-domain', PEER, '--url', url, '--profile', 'https'], 2, 'anchorage: --profile must be https_spiffe or https_web, not "https"'],
      [['--trust-domain', PEER, '--url', url, '--profile', 'https_web', '--colour', 'blue'], 2, 'anchorage: unknown flag --colour'],
      [['--trust-domain', PEER, '--url', 'not a url', '--profile', 'https_web'], 1, 'anchorage: federation: "not a url" is not a URL'],
      [['--trust-domain', PEER, '--url', 'http://127.0.0.1/', '--profile', 'https_web'], 1, 'anchorage: federation: bundle endpoint URL must be https, not http'],
      [['--trust-domain', PEER, '--url', 'https://u:p@127.0.0.1/', '--profile', 'https_web'], 1, 'anchorage: federation: bundle endpoint URL must not carry user info'],
      [['--trust-domain', 'Peer.Test', '--url', url, '--profile', 'https_web'], 1, 'anchorage: spiffeid: trust domain contains an invalid character "P"'],
      [
        ['--trust-domain', PEER, '--url', url, ...spiffe],
        1,
        'anchorage: federation: bootstrap_bundle is required for profile https_spiffe: no bundle of peer.test is held to authenticate the endpoint with',
      ],
      [['--trust-domain', PEER, '--url', url, '--profile', 'https_spiffe', '--bootstrap-bundle', peerPemFile], 1, 'anchorage: federation: endpoint_spiffe_id is required for profile https_spiffe'],
      [
        ['--trust-domain', PEER, '--url', url, ...spiffe, '--bootstrap-bundle', join(tmp.dir, 'missing.pem')],
        1,
        `anchorage: cannot read ${join(tmp.dir, 'missing.pem')}: ENOENT`,
      ],
      [['--trust-domain', PEER, '--url', url, ...spiffe, '--bootstrap-bundle', garbage], 1, 'anchorage: federation: bootstrap_bundle for peer.test: bundle: document is not valid JSON'],
      [['--trust-domain', PEER, '--url', url, ...spiffe, '--bootstrap-bundle', noKeys], 1, 'anchorage: federation: bootstrap_bundle for peer.test: it holds no X.509 authorities'],
      [['--trust-domain', PEER, '--url', url, ...spiffe, '--bootstrap-bundle', badPem], 1, `anchorage: ${badPem}: bundle: no PEM certificates found`],
      [
        ['--trust-domain', PEER, '--url', url, '--profile', 'https_web', '--endpoint-id', 'spiffe://peer.test/be'],
        1,
        'anchorage: federation: endpoint_spiffe_id is only for profile https_spiffe',
      ],
      [['--trust-domain', PEER, '--url', url, '--profile', 'https_web', '--ca-file', join(tmp.dir, 'missing-ca.pem')], 1, `anchorage: cannot read ${join(tmp.dir, 'missing-ca.pem')}: ENOENT`],
      [['--trust-domain', PEER, '--url', url, '--profile', 'https_web', '--ca-file', garbage], 1, 'anchorage: federation: web_ca_pem holds no PEM certificate'],
      [
        ['--trust-domain', TD, '--url', url, '--profile', 'https_web'],
        1,
        "anchorage: federation: prod.example is this server's own trust domain, not a federated one",
      ],
      [
        ['--trust-domain', PEER, '--url', url, '--profile', 'https_spiffe', '--endpoint-id', 'spiffe://other.test/be', '--bootstrap-bundle', peerPemFile],
        1,
        'anchorage: federation: endpoint_spiffe_id spiffe://other.test/be is not in trust domain peer.test, whose bundle authenticates the endpoint',
      ],
    ];
    for (const [args, code, line] of cases) {
      refused(run(['federation', 'create', ...args]), code, line, `create ${args.join(' ')}`);
    }
    expect(ok(['federation', 'list'])).toBe('No federation relationships\n');
    expect(json<unknown[]>(['bundle', 'list'])).toEqual([]);
  });

  it('answers unknown subcommands with exit 2, and an unknown trust domain with exit 1', () => {
    refused(run(['federation', 'explode']), 2, 'anchorage: federation: unknown subcommand "explode" (create, update, list, show, refresh, delete)');
    refused(cli(['federation'], env), 2, 'anchorage: federation: give a subcommand (create, update, list, show, refresh, delete)');
    for (const sub of ['show', 'refresh', 'delete', 'update']) {
      refused(run(['federation', sub]), 2, 'anchorage: --trust-domain is required');
      refused(run(['federation', sub, '--trust-domain', 'nobody.test']), 1, 'anchorage: federation: no federation relationship with nobody.test');
    }
  });

  it('creates a relationship whose endpoint is unreachable, keeping the bootstrap bundle and showing the error; update and delete', () => {
    const url = `https://127.0.0.1:${closedPort}/`;
    const before = Math.floor(Date.now() / 1000);
    const createdText = ok(['federation', 'create', '--trust-domain', PEER, '--url', url, '--profile', 'https_spiffe', '--endpoint-id', 'spiffe://peer.test/bundle-endpoint', '--bootstrap-bundle', peerPemFile]);
    const errorLine = new RegExp(
      `^Last error   : unreachable: federation: https://127\\.0\\.0\\.1:${closedPort}/: connect ECONNREFUSED 127\\.0\\.0\\.1:${closedPort} \\(\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, 1 in a row\\)$`,
      'm',
    );
    expect(createdText).toMatch(errorLine);
    expect(createdText).toContain(`Trust domain : ${PEER}\nEndpoint URL : ${url}\nProfile      : https_spiffe\nEndpoint ID  : spiffe://peer.test/bundle-endpoint\nLast refresh : never\n`);
    expect(createdText).toContain('Bundle       : sequence 0, refresh hint 0s, stored ');

    const shown = ok(['federation', 'show', '--trust-domain', PEER]);
    expect(shown).toMatch(errorLine);
    expect(shown).toContain('Last refresh : never\n');

    const rel = json<RelationshipJson>(['federation', 'show', '--trust-domain', PEER]);
    const expectedDoc = new SpiffeBundle(TrustDomain.parse(PEER), { x509Authorities: X509Bundle.parsePem(TrustDomain.parse(PEER), peerPem).authorities() }).marshal();
    expect(rel).toMatchObject({
      trust_domain: PEER,
      bundle_endpoint_url: url,
      profile: 'https_spiffe',
      endpoint_spiffe_id: 'spiffe://peer.test/bundle-endpoint',
      web_ca_pem: '',
      last_success_at: 0,
      last_error_reason: 'unreachable',
      consecutive_failures: 1,
    });
    expect(rel.last_error).toMatch(new RegExp(`^federation: https://127\\.0\\.0\\.1:${closedPort}/: connect ECONNREFUSED`));
    expect(rel.created_at).toBeGreaterThanOrEqual(before);
    expect(rel.last_attempt_at).toBeGreaterThanOrEqual(rel.created_at);
    expect(rel.last_error_at).toBe(rel.last_attempt_at);
    // The first retry comes at the minimum interval (30s by default).
    expect(rel.next_refresh_at).toBe(rel.last_error_at + 30);

    // The bundle list shows the bootstrap bundle as fetched from the endpoint, with the last error.
    const bundles = json<FederatedBundleJson[]>(['bundle', 'list']);
    expect(bundles).toHaveLength(1);
    expect(bundles[0]).toMatchObject({
      trust_domain: PEER,
      document: expectedDoc,
      sequence: 0,
      refresh_hint: 0,
      source: 'endpoint',
      last_refresh: 0,
      last_error: rel.last_error,
      last_error_at: rel.last_error_at,
    });
    expect(bundles[0]!.last_error).not.toBe('');
    expect(bundles[0]!.keys.map((k) => k.use)).toEqual(['x509-svid']);
    expect(rel.bundle).toEqual(bundles[0]);

    // A refresh tries again: one more failure.
    const again = json<RelationshipJson>(['federation', 'refresh', '--trust-domain', PEER]);
    expect(again).toMatchObject({ last_error_reason: 'unreachable', consecutive_failures: 2, last_success_at: 0 });
    expect(again.next_refresh_at).toBe(again.last_error_at + 60);

    // A second create of the same trust domain is refused.
    refused(
      run(['federation', 'create', '--trust-domain', PEER, '--url', url, '--profile', 'https_web']),
      1,
      'anchorage: datastore: a federation relationship with peer.test already exists',
    );

    // update --url replaces the URL alone.
    const newUrl = `https://127.0.0.1:${closedPort}/bundle`;
    const updated = json<RelationshipJson>(['federation', 'update', '--trust-domain', PEER, '--url', newUrl]);
    expect(updated).toMatchObject({
      trust_domain: PEER,
      bundle_endpoint_url: newUrl,
      profile: 'https_spiffe',
      endpoint_spiffe_id: 'spiffe://peer.test/bundle-endpoint',
      web_ca_pem: '',
      created_at: rel.created_at,
      last_error_reason: 'unreachable',
      consecutive_failures: 3,
    });
    expect(updated.last_error).toMatch(new RegExp(`^federation: https://127\\.0\\.0\\.1:${closedPort}/bundle: connect ECONNREFUSED`));
    expect(updated.bundle?.document).toBe(expectedDoc);
    expect(ok(['federation', 'list'])).toContain(`Endpoint URL : ${newUrl}\n`);

    // An update refused leaves everything as it was.
    refused(run(['federation', 'update', '--trust-domain', PEER, '--url', 'http://127.0.0.1/']), 1, 'anchorage: federation: bundle endpoint URL must be https, not http');
    expect(json<RelationshipJson>(['federation', 'show', '--trust-domain', PEER]).bundle_endpoint_url).toBe(newUrl);

    // delete removes the relationship and its bundle.
    expect(ok(['federation', 'delete', '--trust-domain', PEER])).toBe(`Deleted the federation relationship with ${PEER} and its bundle\n`);
    expect(json<unknown[]>(['bundle', 'list'])).toEqual([]);
    expect(ok(['federation', 'list'])).toBe('No federation relationships\n');
    refused(run(['federation', 'show', '--trust-domain', PEER]), 1, `anchorage: federation: no federation relationship with ${PEER}`);
  });

  it('https_web: a given CA file, no bundle until the first fetch succeeds; a profile change drops what belonged to the old one', () => {
    const url = `https://127.0.0.1:${closedPort}/`;
    const created = json<RelationshipJson>(['federation', 'create', '--trust-domain', 'web.test', '--url', url, '--profile', 'https_web', '--ca-file', peerPemFile]);
    expect(created).toMatchObject({ trust_domain: 'web.test', profile: 'https_web', endpoint_spiffe_id: '', web_ca_pem: peerPem, last_error_reason: 'unreachable', bundle: null });
    const text = ok(['federation', 'show', '--trust-domain', 'web.test']);
    expect(text).toContain('CA           : given (PEM)\n');
    expect(text).toContain('Bundle       : none held\n');
    expect(json<unknown[]>(['bundle', 'list'])).toEqual([]);

    // To https_spiffe: the CA goes, the endpoint ID and a bootstrap bundle come.
    const changed = json<RelationshipJson>([
      'federation', 'update', '--trust-domain', 'web.test', '--profile', 'https_spiffe', '--endpoint-id', 'spiffe://web.test/be',
      '--bootstrap-bundle', writeFile(join(tmp.dir, 'web.json'), new SpiffeBundle(TrustDomain.parse('web.test'), { x509Authorities: X509Bundle.parsePem(TrustDomain.parse('web.test'), peerPem).authorities(), sequence: 4 }).marshal()),
    ]);
    expect(changed).toMatchObject({ profile: 'https_spiffe', endpoint_spiffe_id: 'spiffe://web.test/be', web_ca_pem: '', bundle_endpoint_url: url });
    expect(changed.bundle).toMatchObject({ sequence: 4, source: 'endpoint' });

    expect(ok(['federation', 'delete', '--trust-domain', 'web.test'])).toBe('Deleted the federation relationship with web.test and its bundle\n');
    expect(json<unknown[]>(['bundle', 'list'])).toEqual([]);
  });
});
