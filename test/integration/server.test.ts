import 'reflect-metadata';
import { createHash, X509Certificate } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromPem } from '@anchorage/client/pem';
import { loadAdminProto } from '../../proto/load.js';
import type { AdminClient } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import { JwtBundle, SpiffeBundle, X509Bundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { verifyJwtSvid } from '@anchorage/client/spiffe/jwtsvid';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { cli, startServerProcess, tempDir, writeFile, type ServerProcess } from '../helpers/process.js';
import { createSoftHsmToken, type SoftHsmToken } from '../helpers/softhsm.js';
import { acquirePkcs11Module, ckr } from '../../ca/keymanager/pkcs11/index.js';

const P = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');

const TD = 'prod.example';
const td = TrustDomain.parse(TD);

let token: SoftHsmToken;
let tmp: { dir: string; cleanup: () => void };
let server: ServerProcess;
let config: string;
let socket: string;
let env: NodeJS.ProcessEnv;

function serverYaml(
  over: { pinFile?: string; tokenLabel?: string; module?: string; trustDomain?: string; dataDir?: string; socket?: string } = {},
): string {
  return `trust_domain: ${over.trustDomain ?? TD}
data_dir: ${over.dataDir ?? join(tmp.dir, 'data')}
admin_socket: ${over.socket ?? join(tmp.dir, 'admin.sock')}
bind_address: 127.0.0.1:0
key_manager:
  type: pkcs11
  module: ${over.module ?? token.module}
  token_label: ${over.tokenLabel ?? token.label}
  pin_file: ${over.pinFile ?? join(tmp.dir, 'pin')}
ca:
  ttl: 24h
x509_svid_ttl: 1h
jwt_svid_ttl: 5m
`;
}

function ok(args: string[]): string {
  const r = cli([...args, '--socket', socket], env);
  if (r.code !== 0) throw new Error(`anchorage ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

function fails(args: string[], withSocket = true) {
  const r = cli(withSocket ? [...args, '--socket', socket] : args, env);
  expect(r.code, r.stdout).not.toBe(0);
  // One line, prefixed, no stack trace.
  const lines = r.stderr.trim().split('\n');
  expect(lines[0]).toMatch(/^anchorage: /);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  return { code: r.code, message: lines[0]!.replace(/^anchorage: /, '') };
}

function adminClient(): AdminClient {
  const Ctor = loadAdminProto().anchorage.admin.v1.Admin;
  return new Ctor(`unix://${socket}`, grpc.credentials.createInsecure());
}

function callStatus(fn: (c: AdminClient, cb: (err: grpc.ServiceError | null) => void) => void): Promise<{ code: number; details: string }> {
  const c = adminClient();
  return new Promise((resolve) =>
    fn(c, (err) => {
      c.close();
      resolve({ code: err ? err.code : grpc.status.OK, details: err ? err.details : '' });
    }),
  );
}

function makeCsr(spiffeId?: string): { der: Buffer; keyFile: string } {
  const keyFile = join(tmp.dir, `csr-key-${Math.random().toString(16).slice(2)}.pem`);
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile]);
  const args = ['req', '-new', '-key', keyFile, '-subj', '/O=test', '-outform', 'DER'];
  if (spiffeId) args.push('-addext', `subjectAltName=URI:${spiffeId}`);
  return { der: execFileSync('openssl', args), keyFile };
}

beforeAll(async () => {
  token = createSoftHsmToken('anchorage', '4321');
  // This process opens the token too (to ask it for key values), so it needs the same conf.
  process.env.SOFTHSM2_CONF = token.conf;
  tmp = tempDir('anchorage-it-');
  env = { ...token.env };
  writeFile(join(tmp.dir, 'pin'), '4321\n');
  config = writeFile(join(tmp.dir, 'server.yaml'), serverYaml());
  socket = join(tmp.dir, 'admin.sock');
  server = await startServerProcess(config, socket, env);
});

afterAll(async () => {
  await server?.kill('SIGTERM');
  tmp?.cleanup();
  token?.cleanup();
});

describe('server process', () => {
  it('keeps its socket, data dir and datastore private', () => {
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(statSync(join(tmp.dir, 'data')).mode & 0o777).toBe(0o700);
    expect(statSync(join(tmp.dir, 'data', 'datastore.sqlite3')).mode & 0o777).toBe(0o600);
  });

  it('never logs the PIN', () => {
    expect(server.log()).not.toContain('4321');
  });

  it('publishes a bundle: the root as PEM, and a SPIFFE bundle document with the root and one JWT key', () => {
    const pem = ok(['bundle', 'show', '--format', 'pem']);
    const roots = fromPem(pem, 'CERTIFICATE');
    expect(roots).toHaveLength(1);
    const root = new X509Certificate(roots[0]!);
    expect(root.ca).toBe(true);
    expect(root.checkIssued(root)).toBe(true);
    expect(root.verify(root.publicKey)).toBe(true);

    const doc = JSON.parse(ok(['bundle', 'show', '--format', 'spiffe']));
    expect(doc.spiffe_sequence).toBe(1);
    expect(doc.spiffe_refresh_hint).toBe(300);
    const uses = doc.keys.map((k: { use: string }) => k.use).sort();
    expect(uses).toEqual(['jwt-svid', 'x509-svid']);
    const x = doc.keys.find((k: { use: string }) => k.use === 'x509-svid');
    expect(x.kid).toBeUndefined();
    expect(Buffer.from(x.x5c[0], 'base64').equals(roots[0]!)).toBe(true);
    const j = doc.keys.find((k: { use: string }) => k.use === 'jwt-svid');
    expect(j).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(typeof j.kid).toBe('string');
  });

  it('mints an X509-SVID with the exact SPIFFE profile that openssl, @peculiar/x509 and Node all accept', async () => {
    const out = join(tmp.dir, 'svid1');
    ok(['x509', 'mint', '--spiffe-id', `spiffe://${TD}/web`, '--dns', 'web.prod.example', '--dns', 'www.prod.example', '--ttl', '30m', '--out-dir', out]);
    expect(readdirSync(out).sort()).toEqual(['bundle.pem', 'key.pem', 'svid.pem']);
    expect(statSync(join(out, 'key.pem')).mode & 0o777).toBe(0o600);
    const chain = fromPem(readFileSync(join(out, 'svid.pem'), 'utf8'), 'CERTIFICATE');
    expect(chain).toHaveLength(2);
    writeFileSync(join(out, 'leaf.pem'), readFileSync(join(out, 'svid.pem'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!);
    writeFileSync(join(out, 'inter.pem'), readFileSync(join(out, 'svid.pem'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[1]!);
    const verify = spawnSync('openssl', ['verify', '-CAfile', join(out, 'bundle.pem'), '-untrusted', join(out, 'inter.pem'), join(out, 'leaf.pem')], { encoding: 'utf8' });
    expect(verify.stdout.trim()).toBe(`${join(out, 'leaf.pem')}: OK`);
    // The bundle written by mint is the one `bundle show` publishes.
    expect(readFileSync(join(out, 'bundle.pem'), 'utf8')).toBe(ok(['bundle', 'show', '--format', 'pem']));

    const leaf = new x509.X509Certificate(chain[0]!);
    const inter = new x509.X509Certificate(chain[1]!);
    expect(leaf.subject).toBe('O=Anchorage, CN=web.prod.example');
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension)!;
    expect(san.critical).toBe(false);
    expect(san.names.toJSON()).toEqual([
      { type: 'url', value: `spiffe://${TD}/web` },
      { type: 'dns', value: 'web.prod.example' },
      { type: 'dns', value: 'www.prod.example' },
    ]);
    const bc = leaf.getExtension(x509.BasicConstraintsExtension)!;
    expect([bc.critical, bc.ca]).toEqual([true, false]);
    const ku = leaf.getExtension(x509.KeyUsagesExtension)!;
    expect([ku.critical, ku.usages]).toEqual([true, x509.KeyUsageFlags.digitalSignature]);
    const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension)!;
    expect(eku.usages).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const ski = leaf.getExtension(x509.SubjectKeyIdentifierExtension)!;
    const spkiBits = Buffer.from(leaf.publicKey.rawData).subarray(-65);
    expect(ski.keyId).toBe(createHash('sha1').update(spkiBits).digest('hex'));
    const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension)!;
    expect(aki.keyId).toBe(inter.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBe((30 * 60 + 10) * 1000);
    expect(leaf.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-256' } });

    const node = new X509Certificate(chain[0]!);
    expect(node.subjectAltName).toBe(`URI:spiffe://${TD}/web, DNS:web.prod.example, DNS:www.prod.example`);
    expect(node.ca).toBe(false);
    expect(node.checkIssued(new X509Certificate(chain[1]!))).toBe(true);
    expect(node.verify(new X509Certificate(chain[1]!).publicKey)).toBe(true);

    // Intermediate profile.
    const ibc = inter.getExtension(x509.BasicConstraintsExtension)!;
    expect([ibc.critical, ibc.ca, ibc.pathLength]).toEqual([true, true, 0]);
    const iku = inter.getExtension(x509.KeyUsagesExtension)!;
    expect(iku.critical).toBe(true);
    expect(iku.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature);
    expect(inter.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([{ type: 'url', value: `spiffe://${TD}` }]);

    // And our own SPIFFE verifier, against the published bundle.
    const bundle = new X509Bundle(td, fromPem(readFileSync(join(out, 'bundle.pem'), 'utf8'), 'CERTIFICATE'));
    expect(verifyX509Svid(chain, (t) => (t.equals(td) ? bundle : undefined)).spiffeId.toString()).toBe(`spiffe://${TD}/web`);
  });

  it('mints a JWT-SVID signed in the HSM that verifies against the published JWT bundle', async () => {
    const jwt = ok(['jwt', 'mint', '--spiffe-id', `spiffe://${TD}/api`, '--audience', 'db', '--audience', 'cache']).trim();
    const header = JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString());
    expect(Object.keys(header).sort()).toEqual(['alg', 'kid', 'typ']);
    expect(header.alg).toBe('ES256');
    const doc = SpiffeBundle.parse(td, ok(['bundle', 'show', '--format', 'spiffe']));
    expect(doc.jwt.findKey(header.kid)).toBeDefined();
    const jb = new JwtBundle(td, doc.jwt.keys());
    const res = await verifyJwtSvid(jwt, (t) => (t.equals(td) ? jb : undefined), ['cache']);
    expect(res.spiffeId.toString()).toBe(`spiffe://${TD}/api`);
    expect(res.audience).toEqual(['db', 'cache']);
    expect(res.expiry.getTime() - Date.now()).toBeLessThanOrEqual(5 * 60 * 1000);
    expect(res.expiry.getTime() - Date.now()).toBeGreaterThan(4 * 60 * 1000);
  });

  it('keeps every CA key in the token as sensitive and never extractable; reading its value fails', () => {
    const pkcs11 = (args: string[]) =>
      spawnSync('pkcs11-tool', ['--module', token.module, '--token-label', token.label, '--login', '--pin', token.pin, ...args], {
        env,
        encoding: 'utf8',
      });
    const list = pkcs11(['--list-objects', '--type', 'privkey']);
    expect(list.status).toBe(0);
    const blocks = list.stdout.split(/(?=Private Key Object)/).filter((b) => b.startsWith('Private Key Object'));
    // root, the first intermediate, the first JWT key, and the audit log's checkpoint key
    expect(blocks).toHaveLength(4);
    expect(list.stdout).toContain(`anchorage-audit-${TD}`);
    for (const b of blocks) {
      expect(b).toMatch(/Access:\s+sensitive, always sensitive, never extractable/);
      expect(b).toMatch(/EC/);
    }
    const rootLabel = `anchorage-root-${TD}`;
    expect(list.stdout).toContain(rootLabel);
    // Ask the token directly for each CA private key's value: it must refuse.
    const mod = acquirePkcs11Module(token.module);
    const lib = mod.lib;
    const slot = lib.C_GetSlotList(true).find((sl) => lib.C_GetTokenInfo(sl).label.trim() === token.label)!;
    const session = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION);
    try {
      lib.C_Login(session, P.CKU_USER, token.pin);
      lib.C_FindObjectsInit(session, [{ type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY }]);
      const keys = lib.C_FindObjects(session, 10);
      lib.C_FindObjectsFinal(session);
      expect(keys).toHaveLength(4);
      for (const key of keys) {
        let err: unknown;
        try {
          lib.C_GetAttributeValue(session, key, [{ type: P.CKA_VALUE }]);
        } catch (e) {
          err = e;
        }
        expect(ckr(err)).toBe('CKR_ATTRIBUTE_SENSITIVE');
        const [extractable, sensitive] = lib.C_GetAttributeValue(session, key, [{ type: P.CKA_EXTRACTABLE }, { type: P.CKA_SENSITIVE }]);
        expect([extractable!.value[0], sensitive!.value[0]]).toEqual([0, 1]);
      }
    } finally {
      lib.C_CloseSession(session);
      mod.release();
    }
  });

  it('manages entries through the CLI: create, show, list, update with revision check, delete', () => {
    const created = JSON.parse(
      ok(['entry', 'create', '--spiffe-id', `spiffe://${TD}/db`, '--parent-id', `spiffe://${TD}/agent/a`, '--selector', 'unix:uid:1000', '--selector', 'unix:gid:50', '--x509-ttl', '10m', '--dns', 'db.prod.example', '--hint', 'db', '--json']),
    );
    expect(created).toMatchObject({ spiffe_id: `spiffe://${TD}/db`, parent_id: `spiffe://${TD}/agent/a`, x509_svid_ttl: 600, jwt_svid_ttl: 0, revision: 1, hint: 'db', dns_names: ['db.prod.example'] });
    expect(created.selectors.sort()).toEqual(['unix:gid:50', 'unix:uid:1000']);
    const shown = JSON.parse(ok(['entry', 'show', '--id', created.id, '--json']));
    expect(shown).toEqual(created);
    const listed = JSON.parse(ok(['entry', 'list', '--parent-id', `spiffe://${TD}/agent/a`, '--json']));
    expect(listed.map((e: { id: string }) => e.id)).toContain(created.id);

    const dup = fails(['entry', 'create', '--spiffe-id', `spiffe://${TD}/db`, '--parent-id', `spiffe://${TD}/agent/a`, '--selector', 'unix:gid:50', '--selector', 'unix:uid:1000']);
    expect(dup.code).toBe(1);
    expect(dup.message).toContain('already exists');

    const updated = JSON.parse(ok(['entry', 'update', '--id', created.id, '--selector', 'unix:uid:2000', '--revision', '1', '--json']));
    expect(updated.selectors).toEqual(['unix:uid:2000']);
    expect(updated.revision).toBe(2);
    expect(updated.dns_names).toEqual(['db.prod.example']);
    const stale = fails(['entry', 'update', '--id', created.id, '--hint', 'x', '--revision', '1']);
    expect(stale.code).toBe(1);
    expect(stale.message).toMatch(/revision/);

    expect(ok(['entry', 'delete', '--id', created.id])).toContain(`Deleted entry ${created.id}`);
    expect(fails(['entry', 'show', '--id', created.id]).message).toBe(`admin: no entry with id ${created.id}`);
  });

  it('lists agents (none yet) in text and JSON', () => {
    expect(ok(['agent', 'list'])).toBe('No agents\n');
    expect(JSON.parse(ok(['agent', 'list', '--json']))).toEqual([]);
  });

  it('creates single-use join tokens', () => {
    const t = JSON.parse(ok(['token', 'create', '--ttl', '15m', '--json']));
    expect(t.token).toMatch(/^[0-9a-f]{32}$/);
    expect(t.expires_at - Math.floor(Date.now() / 1000)).toBeGreaterThan(14 * 60);
    expect(fails(['token', 'create', '--ttl', '30d']).message).toMatch(/join token ttl/);
  });

  it('answers bad CLI input with one line and a non-zero exit, writing nothing', () => {
    const out = join(tmp.dir, 'never');
    const cases: Array<[string[], number, RegExp]> = [
      [['entry', 'create', '--spiffe-id', 'spiffe://other.example/x', '--parent-id', `spiffe://${TD}/a`, '--selector', 'unix:uid:1'], 1, /^entry: spiffe id spiffe:\/\/other.example\/x is not in trust domain prod.example$/],
      [['entry', 'create', '--spiffe-id', `spiffe://${TD}/a//b`, '--parent-id', `spiffe://${TD}/a`, '--selector', 'unix:uid:1'], 1, /^spiffeid: /],
      [['entry', 'create', '--spiffe-id', `spiffe://${TD}/x`, '--parent-id', `spiffe://${TD}/a`, '--selector', 'nocolon'], 1, /^entry: selector "nocolon" must be type:value/],
      [['entry', 'create', '--spiffe-id', `spiffe://${TD}/x`, '--parent-id', `spiffe://${TD}/a`, '--selector', 'unix:uid:1', '--x509-ttl', '48h'], 1, /goes beyond the CA lifetime/],
      [['entry', 'create', '--spiffe-id', `spiffe://${TD}/x`, '--parent-id', `spiffe://${TD}/a`], 2, /^--selector is required$/],
      [['entry', 'create', '--bogus'], 2, /bogus/],
      [['x509', 'mint', '--spiffe-id', `spiffe://${TD}/x`, '--ttl', '48h', '--out-dir', out], 1, /^x509svid: ttl 2d goes beyond the CA, which expires in /],
      [['x509', 'mint', '--spiffe-id', `spiffe://${TD}/x`, '--ttl', '5 minutes', '--out-dir', out], 2, /is not a duration/],
      [['x509', 'mint', '--spiffe-id', 'spiffe://elsewhere.example/x', '--out-dir', out], 1, /not in trust domain prod.example/],
      [['x509', 'mint', '--spiffe-id', `spiffe://${TD}`, '--out-dir', out], 1, /has no path/],
      [['jwt', 'mint', '--spiffe-id', `spiffe://${TD}/x`], 2, /^--audience is required$/],
      [['bundle', 'show', '--format', 'der'], 2, /--format must be pem or spiffe/],
      [['agent', 'show', '--spiffe-id', `spiffe://${TD}/anchorage/agent/join_token/none`], 1, /^admin: no agent spiffe:\/\/prod.example\/anchorage\/agent\/join_token\/none$/],
      [['agent', 'evict'], 2, /^--spiffe-id is required$/],
      [['agent', 'show', '--spiffe-id', 'not-an-id'], 1, /^spiffeid: /],
    ];
    for (const [args, code, re] of cases) {
      const f = fails(args);
      expect(f.code, args.join(' ')).toBe(code);
      expect(f.message, args.join(' ')).toMatch(re);
    }
    expect(existsSync(out)).toBe(false);
    // No flag: $ANCHORAGE_ADMIN_SOCKET, else the server's default socket, where nothing listens here.
    expect(cli(['entry', 'list'], { ...env, ANCHORAGE_ADMIN_SOCKET: join(tmp.dir, 'env.sock') }).stderr).toBe(
      `anchorage: cli: no admin socket at ${join(tmp.dir, 'env.sock')} ($ANCHORAGE_ADMIN_SOCKET); is "anchorage server run" running?\n`,
    );
    expect(fails(['entry', 'list', '--socket', join(tmp.dir, 'nope.sock')], false).message).toMatch(/no admin socket at/);
  });

  it('answers bad admin API calls with the fitting gRPC status', async () => {
    const good = makeCsr();
    const tampered = Buffer.from(good.der);
    tampered[tampered.length - 3]! ^= 0x01;
    const mint = (csr: Buffer, spiffeId = `spiffe://${TD}/x`, ttl = 0) =>
      callStatus((c, cb) => c.MintX509SVID({ csr, spiffe_id: spiffeId, ttl }, (err) => cb(err)));
    expect(await mint(good.der)).toEqual({ code: grpc.status.OK, details: '' });
    expect(await mint(Buffer.from('not a csr'))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^csr: /) });
    expect(await mint(tampered)).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'csr: signature does not verify' });
    expect(await mint(Buffer.alloc(0))).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'admin: csr is required' });
    expect((await mint(good.der, 'spiffe://other.example/x')).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await mint(good.der, 'http://prod.example/x')).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await mint(good.der, `spiffe://${TD}/x`, 400 * 86400)).code).toBe(grpc.status.INVALID_ARGUMENT);
    const jwt = (audience: string[]) => callStatus((c, cb) => c.MintJWTSVID({ spiffe_id: `spiffe://${TD}/x`, audience }, (err) => cb(err)));
    expect(await jwt([])).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'jwtsvid: at least one audience is required' });
    expect(await callStatus((c, cb) => c.GetEntry({ id: 'nope' }, (err) => cb(err)))).toEqual({ code: grpc.status.NOT_FOUND, details: 'admin: no entry with id nope' });
    expect((await callStatus((c, cb) => c.CreateEntry({}, (err) => cb(err)))).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await callStatus((c, cb) => c.DeleteEntry({ id: 'nope' }, (err) => cb(err)))).code).toBe(grpc.status.NOT_FOUND);
  });

  it('bundle set|list|delete keep a federated trust domain\'s bundle apart from our own', () => {
    // Another trust domain's bundle: a self-signed CA made here stands in for the peer's root.
    const key = join(tmp.dir, 'peer-root.key');
    const cert = join(tmp.dir, 'peer-root.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', '/O=Peer',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectAltName=URI:spiffe://peer.test']);
    const der = fromPem(readFileSync(cert, 'utf8'), 'CERTIFICATE')[0]!;
    const doc = new SpiffeBundle(TrustDomain.parse('peer.test'), { x509Authorities: [der], sequence: 3 }).marshal();
    const docFile = writeFile(join(tmp.dir, 'peer.json'), doc);
    expect(ok(['bundle', 'list'])).toBe('No federated bundles\n');
    const set = JSON.parse(ok(['bundle', 'set', '--trust-domain', 'peer.test', '--file', docFile, '--json']));
    expect(set).toMatchObject({ trust_domain: 'peer.test', sequence: 3, source: 'static' });
    const listed = JSON.parse(ok(['bundle', 'list', '--json']));
    const peerCert = new X509Certificate(der);
    expect(listed).toHaveLength(1);
    expect(listed[0].keys).toEqual([{ use: 'x509-svid', id: `O=Peer serial ${peerCert.serialNumber}`, not_after: Math.floor(Date.parse(peerCert.validTo) / 1000) }]);
    expect(ok(['bundle', 'list'])).toContain(`Key         : x509-svid O=Peer serial ${peerCert.serialNumber}, expires `);
    // Our own bundle is untouched.
    expect(fromPem(ok(['bundle', 'show', '--format', 'pem']), 'CERTIFICATE')).toHaveLength(1);
    expect(fails(['bundle', 'set', '--trust-domain', TD, '--file', docFile]).message).toBe(`federation: ${TD} is this server's own trust domain, not a federated one`);
    expect(fails(['bundle', 'set', '--trust-domain', 'peer.test', '--file', join(tmp.dir, 'missing.json')]).message).toBe(`cannot read ${join(tmp.dir, 'missing.json')}: ENOENT`);
    expect(fails(['bundle', 'set', '--trust-domain', 'peer.test', '--file', writeFile(join(tmp.dir, 'junk.json'), '{"keys": 7}')]).message).toMatch(/^federation: bundle for peer\.test: /);
    const usage = fails(['bundle', 'set', '--trust-domain', 'peer.test']);
    expect(usage.code).toBe(2);
    expect(usage.message).toBe('--file is required');
    expect(ok(['bundle', 'delete', '--trust-domain', 'peer.test'])).toBe('Deleted the bundle of peer.test\n');
    expect(fails(['bundle', 'delete', '--trust-domain', 'peer.test']).message).toBe('federation: no bundle for peer.test');
  });
});

describe('restart after SIGKILL', () => {
  it('keeps its trust domain, root, intermediate, bundle and entries', async () => {
    const entry = JSON.parse(ok(['entry', 'create', '--spiffe-id', `spiffe://${TD}/survivor`, '--parent-id', `spiffe://${TD}/agent/a`, '--selector', 'unix:uid:7', '--json']));
    const before = {
      pem: ok(['bundle', 'show', '--format', 'pem']),
      doc: ok(['bundle', 'show', '--format', 'spiffe']),
      ca: JSON.parse(ok(['ca', 'show', '--json'])),
      entries: ok(['entry', 'list', '--json']),
    };
    expect(await server.kill('SIGKILL')).toBeNull();
    expect(existsSync(socket)).toBe(true); // a dead server leaves its socket behind
    server = await startServerProcess(config, socket, env);
    expect(ok(['bundle', 'show', '--format', 'pem'])).toBe(before.pem);
    expect(ok(['bundle', 'show', '--format', 'spiffe'])).toBe(before.doc);
    const ca = JSON.parse(ok(['ca', 'show', '--json']));
    expect(ca.keys.map((k: { id: string; status: string }) => `${k.id}:${k.status}`).sort()).toEqual(
      before.ca.keys.map((k: { id: string; status: string }) => `${k.id}:${k.status}`).sort(),
    );
    expect(ok(['entry', 'list', '--json'])).toBe(before.entries);
    expect(JSON.parse(ok(['entry', 'show', '--id', entry.id, '--json'])).spiffe_id).toBe(`spiffe://${TD}/survivor`);
    // and it still mints, with the same intermediate
    const out = join(tmp.dir, 'after-restart');
    ok(['x509', 'mint', '--spiffe-id', `spiffe://${TD}/after`, '--out-dir', out]);
    const chain = fromPem(readFileSync(join(out, 'svid.pem'), 'utf8'), 'CERTIFICATE');
    const active = ca.keys.find((k: { kind: string; status: string }) => k.kind === 'x509' && k.status === 'active');
    expect(fromPem(active.cert, 'CERTIFICATE')[0]!.equals(chain[1]!)).toBe(true);
  });

  it('refuses a second server on the same data dir or socket, and the data dir under another trust domain', async () => {
    const second = cli(['server', 'run', '-c', config], env);
    expect(second.code).toBe(1);
    expect(second.stderr.trim().split('\n').at(-1)).toBe(`anchorage: server: another server (pid ${server.child.pid}) is using ${join(tmp.dir, 'data')}`);
    const sameSocket = writeFile(join(tmp.dir, 'same-socket.yaml'), serverYaml({ dataDir: join(tmp.dir, 'data-2') }));
    const third = cli(['server', 'run', '-c', sameSocket], env);
    expect(third.code).toBe(1);
    expect(third.stderr.trim().split('\n').at(-1)).toBe(`anchorage: server: another server is already listening on ${socket}`);

    await server.kill('SIGTERM');
    expect(existsSync(socket)).toBe(false); // a clean stop removes its socket
    const other = writeFile(join(tmp.dir, 'other-td.yaml'), serverYaml({ trustDomain: 'other.example' }));
    const r = cli(['server', 'run', '-c', other], env);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^anchorage: server: trust_domain is "other.example" but .* belongs to trust domain "prod.example"$/);
  });
});

describe('bad configuration', () => {
  // Each case gets its own data dir and socket, so nothing but the config decides the outcome.
  let n = 0;
  const fresh = () => ({ dataDir: join(tmp.dir, `bad-data-${++n}`), socket: join(tmp.dir, `bad-${n}.sock`) });
  function startFails(yaml: string | undefined, extraEnv: NodeJS.ProcessEnv = {}): string {
    const path = join(tmp.dir, `bad-${Math.random().toString(16).slice(2)}.yaml`);
    if (yaml !== undefined) writeFile(path, yaml);
    const r = cli(['server', 'run', '-c', path], { ...env, ...extraEnv });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('anchorage: '));
    expect(lines.length).toBeGreaterThan(0);
    return lines.join('\n').replaceAll(path, 'CFG');
  }

  it('names the file, the key path and the problem', () => {
    expect(startFails(undefined)).toMatch(/^anchorage: config: cannot read CFG: ENOENT$/);
    expect(startFails('trust_domain: [unclosed')).toMatch(/^anchorage: config: CFG: line 1: not valid YAML/);
    expect(startFails('- a list\n')).toBe('anchorage: config: CFG: the top level must be a mapping of keys');
    expect(startFails(serverYaml(fresh()) + 'unknown_key: 1\n')).toContain('CFG: (top level): unknown key(s): unknown_key');
    expect(startFails(serverYaml(fresh()).replace('ttl: 24h', 'ttl: 1x'))).toContain('CFG: ca.ttl: "1x" is not a duration');
    expect(startFails(serverYaml(fresh()).replace(`trust_domain: ${TD}`, 'trust_domain: Bad_Domain'))).toMatch(/CFG: trust_domain: spiffeid: /);
    expect(startFails(serverYaml(fresh()).replace('x509_svid_ttl: 1h', 'x509_svid_ttl: 48h'))).toContain('CFG: x509_svid_ttl: must be shorter than ca.ttl');
    expect(startFails(serverYaml(fresh()).replace('type: pkcs11', 'type: tpm'))).toMatch(/CFG: key_manager.type: /);
  });

  it('reports a wrong PIN, a missing token, a missing module and a missing PIN source clearly', () => {
    const wrong = writeFile(join(tmp.dir, 'wrong-pin'), '0000\n');
    expect(startFails(serverYaml({ ...fresh(), pinFile: wrong }))).toMatch(/pkcs11: login to token "anchorage" failed: incorrect pin/);
    expect(startFails(serverYaml({ ...fresh(), tokenLabel: 'absent' }))).toMatch(/pkcs11: no token labelled "absent"/);
    expect(startFails(serverYaml({ ...fresh(), module: '/nonexistent/libpkcs11.so' }))).toMatch(/pkcs11: cannot load module \/nonexistent\/libpkcs11.so/);
    expect(startFails(serverYaml({ ...fresh(), pinFile: join(tmp.dir, 'no-such-pin') }))).toMatch(/key_manager.pin_file: cannot read .*no-such-pin: ENOENT/);
    const loose = writeFile(join(tmp.dir, 'loose-pin'), '4321\n', 0o644);
    expect(startFails(serverYaml({ ...fresh(), pinFile: loose }))).toMatch(/key_manager.pin_file: .* is readable by group or others/);
    const envYaml = serverYaml(fresh()).replace(/pin_file: .*/, 'pin_env: ANCHORAGE_TEST_PIN_UNSET');
    expect(startFails(envYaml)).toMatch(/key_manager.pin_env: environment variable ANCHORAGE_TEST_PIN_UNSET is not set/);
  });
});
