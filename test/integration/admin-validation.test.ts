import 'reflect-metadata';
import { generateKeyPairSync, webcrypto, X509Certificate } from 'node:crypto';
import { jwkOf } from '../helpers/jwk.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteDataStore } from '../../ca/datastore/sqlite/index.js';
import { loadAdminProto } from '../../proto/load.js';
import type { AdminClient } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { cli, startServerProcess, tempDir, writeFile, type CliResult, type ServerProcess } from '../helpers/process.js';
import { createSoftHsmToken, softHsmAvailable, type SoftHsmToken, writePkcs11ServerConfig } from '../helpers/softhsm.js';
import { lacks } from '../helpers/needs.js';

// What the admin API lets in, and what the CLI lets out, against a real
// `anchorage server run` on SoftHSM2 (issue 10, items 3, 12, 13 and 14).

const TD = 'admin.example';
const AGENT = `spiffe://${TD}/anchorage/agent/join_token/0123456789abcdef0123456789abcdef`;
const SERVER = `spiffe://${TD}/anchorage/server`;

let token: SoftHsmToken;
let tmp: { dir: string; cleanup: () => void };
let server: ServerProcess;
let config: string;
let socket: string;
let env: NodeJS.ProcessEnv;
let admin: AdminClient;

function run(args: string[]): CliResult {
  return cli([...args, '--socket', socket], env);
}

function ok(args: string[]): string {
  const r = run(args);
  if (r.code !== 0) throw new Error(`anchorage ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Exit 1, nothing on stdout, exactly `anchorage: <line>` on stderr. */
function refused(args: string[], line: string): void {
  const r = run(args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
  expect(r.stdout, args.join(' ')).toBe('');
  expect(r.stderr, args.join(' ')).toBe(`anchorage: ${line}\n`);
}

type Status = { code: number; details: string };

function call(method: string, request: object): Promise<Status> {
  return new Promise((resolve) => {
    const fn = (admin as unknown as Record<string, (r: object, cb: (err: grpc.ServiceError | null) => void) => void>)[method]!;
    fn.call(admin, request, (err) => resolve({ code: err ? err.code : grpc.status.OK, details: err ? err.details : '' }));
  });
}

const reservedLine = (module: string, id: string) => `${module}: spiffe id ${id} is in the namespace reserved for anchorage itself (/anchorage/...)`;
const controlLine = (field: string, cp: string) =>
  `admin: ${field} contains the control character ${cp}; control and bidirectional formatting characters are not accepted`;

function entryArgs(spiffeId: string, extra: string[] = []): string[] {
  return ['entry', 'create', '--spiffe-id', spiffeId, '--parent-id', AGENT, '--selector', `unix:uid:${Math.floor(Math.random() * 1e9)}`, ...extra];
}

/** A self-signed certificate for peer.test made to order (the peer's root, or something posing as one). */
async function peerCert(opts: { name: string; ca: boolean; usages: number; notBefore: Date; notAfter: Date }): Promise<Uint8Array> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '0a1b2c',
    name: opts.name,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(opts.ca, undefined, true),
      new x509.KeyUsagesExtension(opts.usages, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://peer.test' }]),
    ],
  });
  return new Uint8Array(cert.rawData);
}

function bundleFile(name: string, der: Uint8Array): string {
  return writeFile(join(tmp.dir, name), new SpiffeBundle(TrustDomain.parse('peer.test'), { x509Authorities: [der] }).marshal());
}

const DAY = 86_400_000;

beforeAll(async () => {
  token = createSoftHsmToken('anchorage-admin-val', '8642');
  tmp = tempDir('anchorage-admin-val-');
  env = { ...token.env };
  socket = join(tmp.dir, 'admin.sock');
  config = writePkcs11ServerConfig(token, { dir: tmp.dir, trustDomain: TD, socket });
  server = await startServerProcess(config, socket, env);
  admin = new (loadAdminProto().anchorage.admin.v1.Admin)(`unix://${socket}`, grpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  admin?.close();
  await server?.kill('SIGTERM');
  tmp?.cleanup();
  token?.cleanup();
});

describe.skipIf(lacks(!softHsmAvailable(), 'SoftHSM2'))('admin API input (real server process)', () => {
  it('refuses the /anchorage namespace for entries, entry updates, x509 and jwt mints and node aliases; parents may be agents', () => {
    const web = JSON.parse(ok([...entryArgs(`spiffe://${TD}/web`), '--json'])) as { id: string; parent_id: string };
    expect(web.parent_id).toBe(AGENT);
    // Only the namespace itself: a sibling that merely starts with the same letters is an ordinary ID.
    expect(JSON.parse(ok([...entryArgs(`spiffe://${TD}/anchorage-ops/web`), '--json'])).spiffe_id).toBe(`spiffe://${TD}/anchorage-ops/web`);

    const outDir = join(tmp.dir, 'minted');
    for (const id of [SERVER, AGENT, `spiffe://${TD}/anchorage`]) {
      refused(entryArgs(id), reservedLine('entry', id));
      refused(['entry', 'update', '--id', web.id, '--spiffe-id', id], reservedLine('entry', id));
      refused(['x509', 'mint', '--spiffe-id', id, '--out-dir', outDir], reservedLine('x509svid', id));
      refused(['jwt', 'mint', '--spiffe-id', id, '--audience', 'https://victim.example'], reservedLine('jwtsvid', id));
      refused(['token', 'create', '--spiffe-id', id], reservedLine('admin', id));
    }
    expect(existsSync(outDir)).toBe(false);
    // Nothing was written: no entry names a reserved ID, no node alias was made, the entry kept its ID.
    const all = JSON.parse(ok(['entry', 'list', '--json'])) as Array<{ id: string; spiffe_id: string; revision: number }>;
    expect(all.map((e) => e.spiffe_id).sort()).toEqual([`spiffe://${TD}/anchorage-ops/web`, `spiffe://${TD}/web`]);
    expect(all.find((e) => e.id === web.id)?.revision).toBe(1);
  });

  it('refuses control and bidi characters in every string field, naming the field', async () => {
    const entry = { spiffe_id: `spiffe://${TD}/ctl`, parent_id: AGENT, selectors: [{ type: 'unix', value: 'uid:7' }] };
    const cases: Array<[string, object, string]> = [
      ['CreateEntry', { entry: { ...entry, hint: 'a\u0000b' } }, controlLine('entry.hint', 'U+0000')],
      ['CreateEntry', { entry: { ...entry, hint: '\u001b[2J\u001b[Hall clear' } }, controlLine('entry.hint', 'U+001B')],
      ['CreateEntry', { entry: { ...entry, hint: 'exe.\u202egnp' } }, controlLine('entry.hint', 'U+202E')],
      ['CreateEntry', { entry: { ...entry, hint: 'line\u2028break' } }, controlLine('entry.hint', 'U+2028')],
      ['CreateEntry', { entry: { ...entry, selectors: [{ type: 'unix', value: 'uid:7\u009b' }] } }, controlLine('entry.selectors[0].value', 'U+009B')],
      ['CreateEntry', { entry: { ...entry, selectors: [{ type: 'unix', value: 'uid:7' }, { type: 'unix', value: 'gid:\u007f' }] } }, controlLine('entry.selectors[1].value', 'U+007F')],
      ['CreateEntry', { entry: { ...entry, dns_names: ['ok.example', 'a\u200f.example'] } }, controlLine('entry.dns_names[1]', 'U+200F')],
      ['CreateEntry', { entry: { ...entry, federates_with: ['\u2066peer.test'] } }, controlLine('entry.federates_with[0]', 'U+2066')],
      ['CreateEntry', { entry: { ...entry, parent_id: `${AGENT}\u0007` } }, controlLine('entry.parent_id', 'U+0007')],
      ['UpdateEntry', { id: 'x', patch: { hint: 'tab\there' } }, controlLine('patch.hint', 'U+0009')],
      ['GetEntry', { id: '\u001b]0;pwned\u0007' }, controlLine('id', 'U+001B')],
      ['DeleteEntry', { id: 'abc\u200e' }, controlLine('id', 'U+200E')],
      ['CreateJoinToken', { spiffe_id: `spiffe://${TD}/alias\u0085`, ttl: 60 }, controlLine('spiffe_id', 'U+0085')],
      ['MintJWTSVID', { spiffe_id: `spiffe://${TD}/j`, audience: ['aud\u001b'] }, controlLine('audience[0]', 'U+001B')],
      ['GetAgent', { spiffe_id: `${AGENT}\u001b` }, controlLine('spiffe_id', 'U+001B')],
      ['DeleteFederatedBundle', { trust_domain: 'peer.test\u202a' }, controlLine('trust_domain', 'U+202A')],
      [
        'CreateFederationRelationship',
        { relationship: { trust_domain: 'peer.test', bundle_endpoint_url: 'https://peer.test/\u001b[31m', profile: 'https_web' } },
        controlLine('relationship.bundle_endpoint_url', 'U+001B'),
      ],
      [
        'CreateFederationRelationship',
        { relationship: { trust_domain: 'peer.test', bundle_endpoint_url: 'https://peer.test/', profile: 'https_web', web_ca_pem: '-----BEGIN CERTIFICATE-----\n\u001b\n' } },
        controlLine('relationship.web_ca_pem', 'U+001B'),
      ],
    ];
    for (const [method, request, details] of cases) {
      expect(await call(method, request), `${method} ${JSON.stringify(request)}`).toEqual({ code: grpc.status.INVALID_ARGUMENT, details });
    }

    // A kid is shown by `bundle list`: escaped in JSON text, it is refused once parsed.
    const jwk = jwkOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    const doc = JSON.stringify({ keys: [{ ...jwk, use: 'jwt-svid', kid: 'k\u001b[31m' }] });
    expect(await call('SetFederatedBundle', { trust_domain: 'peer.test', document: doc })).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'federation: bundle for peer.test: jwt-svid kid contains the control character U+001B; control and bidirectional formatting characters are not accepted',
    });

    // The same through the CLI: one line, the character named, never echoed.
    refused(entryArgs(`spiffe://${TD}/ctl`, ['--hint', '\u001b[31mred']), controlLine('entry.hint', 'U+001B'));
    const listed = JSON.parse(ok(['entry', 'list', '--json'])) as Array<{ spiffe_id: string }>;
    expect(listed.map((e) => e.spiffe_id)).not.toContain(`spiffe://${TD}/ctl`);
    expect(JSON.parse(ok(['bundle', 'list', '--json']))).toEqual([]);
  });

  it('bundle set refuses a leaf, a CA that may not sign certificates and an expired CA; a CA not valid yet is accepted', async () => {
    const now = Date.now();
    const leaf = await peerCert({ name: 'O=Peer Leaf', ca: false, usages: x509.KeyUsageFlags.digitalSignature, notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
    const noSign = await peerCert({ name: 'O=Peer NoSign', ca: true, usages: x509.KeyUsageFlags.digitalSignature, notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
    const CA_USAGES = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
    const expired = await peerCert({ name: 'O=Peer Old', ca: true, usages: CA_USAGES, notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) });
    const future = await peerCert({ name: 'O=Peer Next', ca: true, usages: CA_USAGES, notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY) });
    const serial = (der: Uint8Array) => new X509Certificate(der).serialNumber;

    refused(
      ['bundle', 'set', '--trust-domain', 'peer.test', '--file', bundleFile('leaf.json', leaf)],
      `federation: bundle for peer.test: x509 authority 1 (O=Peer Leaf serial ${serial(leaf)}) is not a CA certificate (basicConstraints cA is not true)`,
    );
    refused(
      ['bundle', 'set', '--trust-domain', 'peer.test', '--file', bundleFile('nosign.json', noSign)],
      `federation: bundle for peer.test: x509 authority 1 (O=Peer NoSign serial ${serial(noSign)}) may not sign certificates (keyUsage lacks keyCertSign)`,
    );
    refused(
      ['bundle', 'set', '--trust-domain', 'peer.test', '--file', bundleFile('expired.json', expired)],
      `federation: bundle for peer.test: x509 authority 1 (O=Peer Old serial ${serial(expired)}) expired at ${new Date(new X509Certificate(expired).validTo).toISOString()}`,
    );
    expect(JSON.parse(ok(['bundle', 'list', '--json']))).toEqual([]);

    const set = JSON.parse(ok(['bundle', 'set', '--trust-domain', 'peer.test', '--file', bundleFile('future.json', future), '--json'])) as { trust_domain: string };
    expect(set.trust_domain).toBe('peer.test');
    ok(['bundle', 'delete', '--trust-domain', 'peer.test']);
  });

  it('federates_with needs a bundle or a federation relationship of that trust domain', async () => {
    refused(
      entryArgs(`spiffe://${TD}/fed`, ['--federates-with', 'nowhere.test']),
      'entry: cannot federate with nowhere.test: this server holds no bundle of it and no federation relationship with it (add one first: anchorage bundle set, or anchorage federation create)',
    );
    const now = Date.now();
    const root = await peerCert({ name: 'O=Peer Root', ca: true, usages: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
    ok(['bundle', 'set', '--trust-domain', 'peer.test', '--file', bundleFile('root.json', root)]);
    const fed = JSON.parse(ok([...entryArgs(`spiffe://${TD}/fed`, ['--federates-with', 'peer.test']), '--json'])) as { id: string; federates_with: string[] };
    expect(fed.federates_with).toEqual(['peer.test']);
    // A relationship whose endpoint is down still counts: the server will fetch the bundle.
    ok(['federation', 'create', '--trust-domain', 'rel.test', '--url', 'https://127.0.0.1:1/', '--profile', 'https_web']);
    const both = JSON.parse(ok(['entry', 'update', '--id', fed.id, '--federates-with', 'peer.test', '--federates-with', 'rel.test', '--json'])) as { federates_with: string[] };
    expect(both.federates_with).toEqual(['peer.test', 'rel.test']);
    // Once the bundle is gone, the entry can still be edited; adding another unknown one cannot.
    ok(['bundle', 'delete', '--trust-domain', 'peer.test']);
    expect(JSON.parse(ok(['entry', 'update', '--id', fed.id, '--hint', 'still', '--json'])).hint).toBe('still');
    refused(
      ['entry', 'update', '--id', fed.id, '--federates-with', 'peer.test', '--federates-with', 'other.test'],
      'entry: cannot federate with other.test: this server holds no bundle of it and no federation relationship with it (add one first: anchorage bundle set, or anchorage federation create)',
    );
    ok(['federation', 'delete', '--trust-domain', 'rel.test']);
  });

  it('escapes control characters in text and JSON output, even in entries an older version stored', async () => {
    const hint = '\u001b[31mred\u001b[0m \u202egnp.exe\nSPIFFE ID      : spiffe://admin.example/forged \u009b2J\u007f';
    await server.kill('SIGTERM');
    // What an older version let in, written straight into its datastore.
    const ds = SqliteDataStore.open(join(tmp.dir, 'data', 'datastore.sqlite3'));
    try {
      await ds.createEntry({
        spiffeId: `spiffe://${TD}/old`,
        parentId: AGENT,
        selectors: [{ type: 'unix', value: 'uid:\u001b]0;title\u0007' }],
        x509SvidTtl: 0,
        jwtSvidTtl: 0,
        dnsNames: [],
        federatesWith: [],
        hint,
        admin: false,
        downstream: false,
      });
    } finally {
      await ds.close();
    }
    server = await startServerProcess(config, socket, env);
    admin.close();
    admin = new (loadAdminProto().anchorage.admin.v1.Admin)(`unix://${socket}`, grpc.credentials.createInsecure());

    const text = ok(['entry', 'list', '--spiffe-id', `spiffe://${TD}/old`]);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    const lines = text.split('\n');
    // The forged line stays inside the hint's line.
    expect(lines.filter((l) => l.startsWith('SPIFFE ID'))).toEqual([`SPIFFE ID      : spiffe://${TD}/old`]);
    expect(lines).toContain('Selector       : unix:uid:\\x1b]0;title\\x07');
    expect(lines).toContain('Hint           : \\x1b[31mred\\x1b[0m \\u202egnp.exe\\x0aSPIFFE ID      : spiffe://admin.example/forged \\x9b2J\\x7f');

    const json = ok(['entry', 'list', '--spiffe-id', `spiffe://${TD}/old`, '--json']);
    expect(json).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect((JSON.parse(json) as Array<{ hint: string }>)[0]!.hint).toBe(hint);
  });
});
