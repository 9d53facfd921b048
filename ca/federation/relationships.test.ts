import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { checkRelationship, relationshipNotFound } from './relationships.js';

const own = TrustDomain.parse('own.test');
let dir: string;
let caOne: string;
let caTwo: string;

type Input = Parameters<typeof checkRelationship>[0];

const spiffeInput = (over: Partial<Input> = {}): Input => ({
  trust_domain: 'peer.test',
  bundle_endpoint_url: 'https://peer.test:8443/bundle',
  profile: 'https_spiffe',
  endpoint_spiffe_id: 'spiffe://peer.test/bundle-endpoint',
  web_ca_pem: '',
  ...over,
});

const webInput = (over: Partial<Input> = {}): Input => ({
  trust_domain: 'peer.test',
  bundle_endpoint_url: 'https://bundles.peer.example/peer.test',
  profile: 'https_web',
  endpoint_spiffe_id: '',
  web_ca_pem: '',
  ...over,
});

function refusal(input: Input): AnchorageError {
  try {
    checkRelationship(input, own);
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return err as AnchorageError;
  }
  throw new Error('expected checkRelationship to refuse');
}

/** A self-signed CA certificate in PEM, made by openssl. */
function makeCa(name: string): string {
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`,
      '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE'],
    { cwd: dir, stdio: 'pipe' },
  );
  return readFileSync(join(dir, `${name}.pem`), 'utf8');
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-fed-rel-'));
  caOne = makeCa('one');
  caTwo = makeCa('two');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('checkRelationship', () => {
  it.each<[string, Input, string]>([
    ['a missing trust domain', spiffeInput({ trust_domain: '' }), 'federation: trust_domain is required'],
    ['the own trust domain', spiffeInput({ trust_domain: 'own.test', endpoint_spiffe_id: 'spiffe://own.test/x' }), "federation: own.test is this server's own trust domain, not a federated one"],
    ['the own trust domain as an ID', spiffeInput({ trust_domain: 'spiffe://own.test' }), "federation: own.test is this server's own trust domain, not a federated one"],
    ['an upper-case trust domain', spiffeInput({ trust_domain: 'Peer.test' }), 'spiffeid: trust domain contains an invalid character "P"'],
    ['a trust domain with a port', spiffeInput({ trust_domain: 'peer.test:443' }), 'spiffeid: trust domain must not include a port'],
    ['a trust domain ID with a path', spiffeInput({ trust_domain: 'spiffe://peer.test/x' }), 'spiffeid: trust domain must not have a path'],
    ['a missing URL', spiffeInput({ bundle_endpoint_url: '' }), 'federation: bundle_endpoint_url is required'],
    ['a relative URL', spiffeInput({ bundle_endpoint_url: '/bundle' }), 'federation: "/bundle" is not a URL'],
    ['a host without a scheme', spiffeInput({ bundle_endpoint_url: 'peer.test/bundle' }), 'federation: "peer.test/bundle" is not a URL'],
    ['an http URL', spiffeInput({ bundle_endpoint_url: 'http://peer.test/bundle' }), 'federation: bundle endpoint URL must be https, not http'],
    ['a URL with user info', spiffeInput({ bundle_endpoint_url: 'https://me:secret@peer.test/bundle' }), 'federation: bundle endpoint URL must not carry user info'],
    ['a URL with a user name only', spiffeInput({ bundle_endpoint_url: 'https://me@peer.test/bundle' }), 'federation: bundle endpoint URL must not carry user info'],
    ['a URL with a fragment', spiffeInput({ bundle_endpoint_url: 'https://peer.test/bundle#top' }), 'federation: bundle endpoint URL must not have a fragment'],
    ['a missing profile', spiffeInput({ profile: '' }), 'federation: profile is required (https_spiffe or https_web)'],
    ['an unknown profile', spiffeInput({ profile: 'https' }), 'federation: profile "https" is not one of https_spiffe, https_web'],
    ['a profile in the wrong case', spiffeInput({ profile: 'HTTPS_SPIFFE' }), 'federation: profile "HTTPS_SPIFFE" is not one of https_spiffe, https_web'],
    ['https_spiffe without an endpoint ID', spiffeInput({ endpoint_spiffe_id: '' }), 'federation: endpoint_spiffe_id is required for profile https_spiffe'],
    ['a malformed endpoint ID', spiffeInput({ endpoint_spiffe_id: 'spiffe://peer.test/a/../b' }), 'federation: endpoint_spiffe_id: spiffeid: path must not contain dot segments'],
    ['an endpoint ID without the scheme', spiffeInput({ endpoint_spiffe_id: 'peer.test/bundle-endpoint' }), 'federation: endpoint_spiffe_id: spiffeid: scheme must be "spiffe://" in lower case'],
    [
      'an endpoint ID of another trust domain',
      spiffeInput({ endpoint_spiffe_id: 'spiffe://other.test/bundle-endpoint' }),
      'federation: endpoint_spiffe_id spiffe://other.test/bundle-endpoint is not in trust domain peer.test, whose bundle authenticates the endpoint',
    ],
    ['web_ca_pem with https_spiffe', spiffeInput({ web_ca_pem: 'x' }), 'federation: web_ca_pem is only for profile https_web (https_spiffe authenticates with the peer bundle)'],
    ['an endpoint ID with https_web', webInput({ endpoint_spiffe_id: 'spiffe://peer.test/bundle-endpoint' }), 'federation: endpoint_spiffe_id is only for profile https_spiffe'],
    ['web_ca_pem without a certificate', webInput({ web_ca_pem: 'just some text\n' }), 'federation: web_ca_pem holds no PEM certificate'],
    [
      'web_ca_pem holding only a key',
      webInput({ web_ca_pem: '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n' }),
      'federation: web_ca_pem holds no PEM certificate',
    ],
    ['web_ca_pem over 256 KiB', webInput({ web_ca_pem: 'A'.repeat(256 * 1024 + 1) }), 'federation: web_ca_pem is larger than 262144 bytes'],
  ])('refuses %s', (_name, input, message) => {
    const err = refusal(input);
    expect(err.code).toBe('invalid_argument');
    expect(err.message).toBe(message);
    expect(err.message).not.toContain('\n');
  });

  it('refuses web_ca_pem with a corrupt certificate, naming which one', () => {
    const corrupt = '-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGUgYXQgYWxs\n-----END CERTIFICATE-----\n';
    const first = refusal(webInput({ web_ca_pem: corrupt }));
    expect(first.code).toBe('invalid_argument');
    expect(first.message).toMatch(/^federation: web_ca_pem: certificate 1 does not parse: \S/);
    expect(first.message).not.toContain('\n');
    const second = refusal(webInput({ web_ca_pem: caOne + corrupt }));
    expect(second.code).toBe('invalid_argument');
    expect(second.message).toMatch(/^federation: web_ca_pem: certificate 2 does not parse: \S/);
  });

  it('counts the size of web_ca_pem in bytes, not characters', () => {
    // 'é' is two bytes in UTF-8: 131073 of them are 262146 bytes, over the limit, in fewer than 262144 characters.
    const err = refusal(webInput({ web_ca_pem: 'é'.repeat(131_073) }));
    expect(err.message).toBe('federation: web_ca_pem is larger than 262144 bytes');
  });

  it('returns https_spiffe input in canonical form', () => {
    expect(
      checkRelationship(
        spiffeInput({ trust_domain: 'spiffe://peer.test', bundle_endpoint_url: 'HTTPS://Peer.Test:443/a/../bundle?x=1' }),
        own,
      ),
    ).toEqual({
      trustDomain: 'peer.test',
      bundleEndpointUrl: 'https://peer.test/bundle?x=1',
      profile: 'https_spiffe',
      endpointSpiffeId: 'spiffe://peer.test/bundle-endpoint',
      webCaPem: '',
    });
    // The trust domain's own ID is also a valid endpoint ID.
    expect(checkRelationship(spiffeInput({ endpoint_spiffe_id: 'spiffe://peer.test' }), own).endpointSpiffeId).toBe('spiffe://peer.test');
  });

  it('returns https_web input in canonical form: system roots, or only the certificates of web_ca_pem', () => {
    expect(checkRelationship(webInput({ bundle_endpoint_url: 'https://bundles.peer.example:8443' }), own)).toEqual({
      trustDomain: 'peer.test',
      bundleEndpointUrl: 'https://bundles.peer.example:8443/',
      profile: 'https_web',
      endpointSpiffeId: '',
      webCaPem: '',
    });
    // Text around and between the blocks goes; the blocks are joined by one newline and end with one.
    const messy = `# our web CAs\r\n${caOne.trim()}\n\n\nsecond one:\n${caTwo.trim()}   `;
    const r = checkRelationship(webInput({ web_ca_pem: messy }), own);
    expect(r.webCaPem).toBe(`${caOne.trim()}\n${caTwo.trim()}\n`);
    expect(checkRelationship(webInput({ web_ca_pem: caOne }), own).webCaPem).toBe(caOne);
    // A key pasted along with the certificate is not kept.
    const withKey = `${readFileSync(join(dir, 'one.key'), 'utf8')}${caOne}`;
    expect(checkRelationship(webInput({ web_ca_pem: withKey }), own).webCaPem).toBe(caOne);
  });

  it('names a missing relationship as not_found', () => {
    const err = relationshipNotFound('peer.test');
    expect(err.code).toBe('not_found');
    expect(err.message).toBe('federation: no federation relationship with peer.test');
  });
});
