// Interop: a real SPIFFE client, the Rust `spiffe` crate (rust-spiffe),
// fetching from our real node agent's Workload API.
//
// test/interop/rust/ is a small Cargo project (the crate pinned exactly,
// Cargo.lock committed) whose program does what a Rust workload does with the
// crate's WorkloadApiClient, X509Source and JwtSource, runs the checks the
// crate offers (X.509-SVID parsing rules, offline JWT-SVID validation), and
// prints one JSON line with what it got. This file builds it once with cargo
// into the gitignored build cache (test/interop/.cache/rust, so later runs
// reuse it), brings up `anchorage server run` on SoftHSM2 plus `anchorage
// agent run` (harness.ts), and checks every answer against what the agent and
// the server serve, re-verifying the cryptography itself with node:crypto and
// jose.
//
// Without a Rust toolchain the suite is skipped with a warning, except in CI
// (CI=true), where it fails: there it must run. cargo is looked for on PATH,
// then in $CARGO_HOME/bin and ~/.cargo/bin (rustup's place). A cold build
// fetches the crates from crates.io; RUST_INTEROP_DEBUG=1 prints what the
// program got next to the reference values.
import { spawnSync } from 'node:child_process';
import { createPrivateKey, sign, verify, X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { decodeProtectedHeader, importJWK, jwtVerify, type JSONWebKeySet, type JWK } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadWorkloadProto } from '@anchorage/client/proto';
import { splitDer } from '../helpers/test-ca.js';
import {
  cacheDir,
  currentUid,
  describeWithToolchain,
  INTEROP_DIR,
  interopRecorder,
  jsonLine,
  NOBODY_UID,
  openDir,
  run,
  startTrustDomain,
  versionAtLeast,
  waitForSvid,
  type RealTrustDomain,
  type RunResult,
} from './harness.js';

const RUST_DIR = join(INTEROP_DIR, 'rust');
const BIN_NAME = 'rust-spiffe-interop';
const TD = 'rust-interop.test';
const EXPECTED_ID = `spiffe://${TD}/interop/rust-spiffe`;
const HINT = 'interop';
const AUDIENCE = 'spiffe://example.test/rust-interop-audience';
const X509_SVID_TTL = 3600;
const JWT_SVID_TTL = 300;
/** A cold build of the program and its ~190 crates takes 1-3 minutes on 2 cores (dev profile, no debug info). */
const BUILD_TIMEOUT_MS = 12 * 60_000;

// --- the toolchain -------------------------------------------------------------------

/** Where rustup puts cargo; a CI shell may not have it on PATH. */
function cargoBinDirs(): string[] {
  const dirs = [process.env.CARGO_HOME && join(process.env.CARGO_HOME, 'bin'), join(homedir(), '.cargo', 'bin'), '/root/.cargo/bin'];
  return [...new Set(dirs.filter((d): d is string => !!d && existsSync(join(d, 'cargo'))))];
}

function cargoEnv(): NodeJS.ProcessEnv {
  const path = [...cargoBinDirs(), ...(process.env.PATH ?? '').split(delimiter)].filter(Boolean).join(delimiter);
  return { ...process.env, PATH: path, CARGO_TERM_COLOR: 'never' };
}

function cargoToml(): string {
  return readFileSync(join(RUST_DIR, 'Cargo.toml'), 'utf8');
}

/** The exact `spiffe` version Cargo.toml pins, e.g. "0.19.0". */
function pinnedSpiffeVersion(): string {
  const m = /^spiffe\s*=\s*\{[^}]*version\s*=\s*"=([0-9][^"]*)"/m.exec(cargoToml());
  if (!m) throw new Error('interop: test/interop/rust/Cargo.toml does not pin spiffe with "=x.y.z"');
  return m[1]!;
}

/** The `spiffe` version Cargo.lock resolved. */
function lockedSpiffeVersion(): string | undefined {
  const lock = readFileSync(join(RUST_DIR, 'Cargo.lock'), 'utf8');
  return /\[\[package\]\]\nname = "spiffe"\nversion = "([^"]+)"/.exec(lock)?.[1];
}

/** The `rust-version` of Cargo.toml (the crate's MSRV), e.g. "1.88". */
function requiredRustVersion(): string {
  const m = /^rust-version\s*=\s*"([^"]+)"/m.exec(cargoToml());
  if (!m) throw new Error('interop: test/interop/rust/Cargo.toml has no rust-version');
  return m[1]!;
}

/** Why the suite cannot run here, or undefined when it can. */
function rustUnusable(): string | undefined {
  const env = cargoEnv();
  const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8', env, timeout: 30_000 });
  if (cargo.error) return 'Rust toolchain (cargo) not found';
  if (cargo.status !== 0) return `"cargo --version" failed: ${cargo.stderr.trim()}`;
  const rustc = spawnSync('rustc', ['--version'], { encoding: 'utf8', env, timeout: 30_000 });
  const have = /rustc (\d+\.\d+\.\d+)/.exec(rustc.stdout ?? '')?.[1];
  if (!have) return `"rustc --version" failed: ${rustc.error?.message ?? rustc.stderr.trim()}`;
  const need = requiredRustVersion();
  if (!versionAtLeast(have, need)) return `rustc ${have} is older than ${need}, which the spiffe crate ${pinnedSpiffeVersion()} needs`;
  return undefined;
}

const unusable = rustUnusable();

// --- what the program prints -----------------------------------------------------------

interface ApiError {
  variant: string;
  grpc_code: string | null;
  message: string;
}

interface JwtError {
  variant: string;
  message: string;
}

interface Jwk extends JWK {
  kid: string;
}

/** The JSON line of `rust-spiffe-interop check`. */
interface CheckOutput {
  ok: boolean;
  step?: string;
  error?: ApiError;
  x509_svid: {
    spiffe_id: string;
    leaf_uri_spiffe_id: string;
    hint: string | null;
    chain: string[];
    private_key_pkcs8: string;
    svid_count: number;
    fetch_x509_svid_same: boolean;
    fetch_all_count: number;
  };
  /** Trust domain -> base64 DER authorities. */
  x509_context_bundles: Record<string, string[]>;
  x509_bundles: Record<string, string[]>;
  x509_source: { spiffe_id: string; same_svid_as_client: boolean; bundle_trust_domains: string[]; same_bundles_as_client: boolean };
  jwt_svid: { token: string; spiffe_id: string; audience: string[]; expiry: number; key_id: string; hint: string | null; by_id_spiffe_id: string };
  /** Trust domain -> authorities sorted by key ID. */
  jwt_bundles: Record<string, { kid: string; jwk: Jwk }[]>;
  jwt_local: { spiffe_id: string; audience: string[]; expiry: number; wrong_audience_error: JwtError | null; tampered_error: JwtError | null };
  jwt_source: { bundle_trust_domains: string[]; same_bundles_as_client: boolean; svid_spiffe_id: string; validated_spiffe_id: string };
  jwt_remote: { spiffe_id: string; audience: string[]; wrong_audience_error: ApiError | null };
}

/** The JSON line of `rust-spiffe-interop denied`. */
interface DeniedOutput {
  ok: boolean;
  step?: string;
  error?: ApiError;
  calls: Record<'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTSVID' | 'FetchJWTBundles' | 'ValidateJWTSVID', ApiError & { ok?: true }>;
  x509_source_error: string | null;
}

const WORKLOAD_RPCS = ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTSVID', 'FetchJWTBundles', 'ValidateJWTSVID'] as const;
type WorkloadRpc = (typeof WORKLOAD_RPCS)[number];
/** What our agent answers a call without `workload.spiffe.io: true` (workload-api/handlers.ts). */
const NO_HEADER_MESSAGE = 'workloadapi: security header missing from request';

/** One raw call's outcome: tonic's name of the gRPC code, and what the answer held. */
interface RawOutcome {
  code: string;
  message?: string;
  spiffe_ids?: string[];
  trust_domains?: string[];
  spiffe_id?: string;
}

/** The JSON line of `rust-spiffe-interop no-header`. */
interface NoHeaderOutput {
  ok: boolean;
  step?: string;
  error?: ApiError;
  with_header: Record<WorkloadRpc, RawOutcome>;
  no_header: Record<WorkloadRpc, RawOutcome>;
}

// --- reference values: what the agent and the server serve ----------------------------

/** "spiffe://td" or "td" -> "td". */
const tdName = (key: string): string => key.replace(/^spiffe:\/\//, '');

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

interface Reference {
  /** The SVID and key the agent serves to this process (base64 DER). */
  chain: string[];
  key: string;
  /** Trust domain -> base64 DER authorities, from the agent's FetchX509Bundles. */
  x509Bundles: Record<string, string[]>;
  /** Trust domain -> JWKS, from the agent's FetchJWTBundles. */
  jwtBundles: Record<string, JSONWebKeySet>;
  /** The server's own bundle (admin API): X.509 authorities and the SPIFFE bundle document. */
  serverX509: string[];
  serverDocument: { keys: (JWK & { use?: string; kid?: string })[] };
}

/** The first message of a server-streaming Workload API RPC, called with the security header. */
function firstMessage<T>(socket: string, method: 'FetchX509Bundles' | 'FetchJWTBundles'): Promise<T> {
  const client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socket}`, grpc.credentials.createInsecure());
  return new Promise<T>((resolve, reject) => {
    const md = new grpc.Metadata();
    md.set('workload.spiffe.io', 'true');
    const call = client[method]({}, md, { deadline: Date.now() + 10_000 });
    call.on('data', (m: T) => {
      resolve(m);
      call.cancel();
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) reject(new Error(`interop: reference ${method}: ${grpc.status[e.code]}: ${e.details}`));
    });
  }).finally(() => client.close());
}

async function reference(td: RealTrustDomain): Promise<Reference> {
  const svid = await waitForSvid(td.workloadSocket, EXPECTED_ID, 10_000);
  const mine = svid.svids.find((s) => s.spiffe_id === EXPECTED_ID)!;
  const x509 = await firstMessage<{ bundles: Record<string, Buffer> }>(td.workloadSocket, 'FetchX509Bundles');
  const jwt = await firstMessage<{ bundles: Record<string, Buffer> }>(td.workloadSocket, 'FetchJWTBundles');
  const server = await td.admin.call('GetBundle', {});
  return {
    chain: splitDer(mine.x509_svid).map(b64),
    key: b64(mine.x509_svid_key),
    x509Bundles: Object.fromEntries(Object.entries(x509.bundles).map(([k, v]) => [tdName(k), splitDer(v).map(b64)])),
    jwtBundles: Object.fromEntries(Object.entries(jwt.bundles).map(([k, v]) => [tdName(k), JSON.parse(v.toString('utf8')) as JSONWebKeySet])),
    serverX509: server.x509_authorities.map(b64),
    serverDocument: JSON.parse(server.document) as Reference['serverDocument'],
  };
}

const cert = (b64der: string): X509Certificate => new X509Certificate(Buffer.from(b64der, 'base64'));

// --- the suite -----------------------------------------------------------------------

describeWithToolchain('rust spiffe crate against our Workload API', unusable, () => {
  const rec = interopRecorder('rust spiffe');
  let bin: { dir: string; cleanup(): void } | undefined;
  let tdDir: { dir: string; cleanup(): void } | undefined;
  let binary: string;
  let td: RealTrustDomain | undefined;
  let out: CheckOutput;
  let ref: Reference;
  let checkRun: RunResult;
  let started: number;
  /** Why the build or the setup failed; every test reports it (a failed hook alone counts as skips). */
  let setupError: unknown;

  const runRust = (args: string[], uid?: number): Promise<RunResult> =>
    run(binary, args, { env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: td!.endpoint, RUST_BACKTRACE: '1' }, cwd: '/', uid, timeoutMs: 90_000 });

  /** A failure message with the program's output and the agent's and server's logs. */
  const explain = (r: RunResult): string => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}${td?.diagnostics() ?? ''}`;

  beforeAll(async () => {
    try {
      const locked = lockedSpiffeVersion();
      if (locked !== pinnedSpiffeVersion()) throw new Error(`interop: Cargo.lock has spiffe ${locked}, Cargo.toml pins ${pinnedSpiffeVersion()}`);
      const t0 = Date.now();
      const build = await run('cargo', ['build', '--locked'], {
        cwd: RUST_DIR,
        // Incremental: a warm cache rebuilds nothing.
        env: { ...cargoEnv(), CARGO_TARGET_DIR: cacheDir('rust') },
        timeoutMs: BUILD_TIMEOUT_MS,
      });
      if (build.code !== 0) throw new Error(`interop: cargo build failed (exit ${build.code}, signal ${build.signal}):\n${build.stderr.slice(-8000)}${build.stdout}`);
      console.info(`interop: built the rust spiffe ${locked} program in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      // The cache may sit below a directory uid 65534 cannot enter: run a copy from a 0755 temp dir.
      bin = openDir('anchorage-rust-bin-');
      binary = join(bin.dir, BIN_NAME);
      copyFileSync(join(cacheDir('rust'), 'debug', BIN_NAME), binary);

      tdDir = openDir('anchorage-rust-interop-');
      const t1 = Date.now();
      td = await startTrustDomain(tdDir.dir, {
        trustDomain: TD,
        entries: [{ spiffeId: EXPECTED_ID, selectors: [`unix:uid:${currentUid()}`], hint: HINT }],
        x509SvidTtl: `${X509_SVID_TTL}s`,
        jwtSvidTtl: `${JWT_SVID_TTL}s`,
      });
      console.info(`interop: started the trust domain in ${((Date.now() - t1) / 1000).toFixed(1)} s`);

      started = Date.now() / 1000;
      checkRun = await runRust(['check', '--expect-id', EXPECTED_ID, '--audience', AUDIENCE]);
      out = jsonLine<CheckOutput>(checkRun);
      ref = await reference(td);
      if (process.env.RUST_INTEROP_DEBUG) console.info(JSON.stringify({ out, ref }, null, 1));
    } catch (err) {
      setupError = err;
    }
  }, BUILD_TIMEOUT_MS + 180_000);

  afterAll(async () => {
    await td?.close();
    tdDir?.cleanup();
    bin?.cleanup();
  }, 60_000);

  /** The program's answer once everything is up; otherwise the reason, as this test's failure. */
  const ready = (): CheckOutput => {
    if (setupError !== undefined) throw setupError;
    expect(checkRun.code, explain(checkRun)).toBe(0);
    expect(out.ok, explain(checkRun)).toBe(true);
    expect(checkRun.stderr).toBe('');
    return out;
  };

  it('FetchX509SVID: the SVID verifies against the bundle it came with, and its key matches', () =>
    rec.check(['FetchX509SVID'], async () => {
      const o = ready();
      const s = o.x509_svid;
      expect(s.spiffe_id).toBe(EXPECTED_ID);
      expect(s.leaf_uri_spiffe_id).toBe(EXPECTED_ID);
      expect(s.hint).toBe(HINT);
      expect(s.svid_count).toBe(1);
      expect(s.fetch_all_count).toBe(1);
      expect(s.fetch_x509_svid_same).toBe(true);
      // Exactly what the agent serves this uid (the crate neither dropped nor reordered anything).
      expect(s.chain).toEqual(ref.chain);
      expect(s.private_key_pkcs8).toBe(ref.key);

      // Leaf + intermediate; the root is in the bundle.
      expect(s.chain).toHaveLength(2);
      const [leaf, intermediate] = s.chain.map(cert) as [X509Certificate, X509Certificate];
      expect(leaf.subjectAltName).toBe(`URI:${EXPECTED_ID}`);
      expect(leaf.ca).toBe(false);
      expect(intermediate.ca).toBe(true);
      expect(leaf.checkIssued(intermediate)).toBe(true);
      expect(leaf.verify(intermediate.publicKey)).toBe(true);
      const roots = (o.x509_context_bundles[TD] ?? []).map(cert);
      expect(roots.length).toBeGreaterThan(0);
      const root = roots.find((r) => intermediate.checkIssued(r) && intermediate.verify(r.publicKey));
      expect(root, 'no authority in the received X.509 bundle signed the intermediate').toBeDefined();
      expect(root!.verify(root!.publicKey)).toBe(true);
      expect(leaf.verify(root!.publicKey)).toBe(false);
      const now = Date.now() / 1000;
      const notAfter = Date.parse(leaf.validTo) / 1000;
      expect(Date.parse(leaf.validFrom) / 1000).toBeLessThanOrEqual(now + 1);
      expect(notAfter).toBeGreaterThan(now);
      expect(notAfter).toBeLessThanOrEqual(started + X509_SVID_TTL + 5);

      const key = createPrivateKey({ key: Buffer.from(s.private_key_pkcs8, 'base64'), format: 'der', type: 'pkcs8' });
      expect(leaf.checkPrivateKey(key)).toBe(true);
      expect(intermediate.checkPrivateKey(key)).toBe(false);
      const msg = Buffer.from('rust spiffe interop');
      expect(verify(null, msg, leaf.publicKey, sign(null, msg, key))).toBe(true);

      // The crate's X509Source got the same SVID and bundles as its client.
      expect(o.x509_source).toEqual({ spiffe_id: EXPECTED_ID, same_svid_as_client: true, bundle_trust_domains: [TD], same_bundles_as_client: true });
    }));

  it('FetchX509Bundles: exactly our trust domain, with the authorities the agent and the server serve', () =>
    rec.check(['FetchX509Bundles'], async () => {
      const o = ready();
      expect(Object.keys(o.x509_bundles)).toEqual([TD]);
      expect(o.x509_bundles).toEqual(ref.x509Bundles);
      expect(o.x509_bundles[TD]).toEqual(ref.serverX509);
      // The bundle sent with the SVIDs is the same.
      expect(o.x509_context_bundles).toEqual(o.x509_bundles);
      for (const a of o.x509_bundles[TD]!) expect(cert(a).ca).toBe(true);
    }));

  it('FetchJWTSVID: sub, aud and exp as issued, and the signature verifies against the JWT bundle', () =>
    rec.check(['FetchJWTSVID'], async () => {
      const o = ready();
      const j = o.jwt_svid;
      expect(j.spiffe_id).toBe(EXPECTED_ID);
      expect(j.by_id_spiffe_id).toBe(EXPECTED_ID);
      expect(j.audience).toEqual([AUDIENCE]);
      expect(j.hint).toBe(HINT);
      expect(j.expiry).toBeGreaterThan(Date.now() / 1000);
      expect(j.expiry).toBeLessThanOrEqual(started + JWT_SVID_TTL + 5);
      // Re-verified here, independently of the crate, with the key of the agent's JWKS the header names.
      const header = decodeProtectedHeader(j.token);
      expect(header.kid).toBe(j.key_id);
      const jwk = ref.jwtBundles[TD]!.keys.find((k) => k.kid === j.key_id);
      expect(jwk, `no key ${j.key_id} in the agent's JWT bundle`).toBeDefined();
      // jose accepts no "use" but "sig"; a SPIFFE bundle's JWT authority says "jwt-svid".
      const { use: _use, ...publicJwk } = jwk!;
      const { payload, protectedHeader } = await jwtVerify(j.token, await importJWK(publicJwk, header.alg), { audience: AUDIENCE });
      expect(payload.sub).toBe(EXPECTED_ID);
      expect(payload.aud).toEqual([AUDIENCE]);
      expect(payload.exp).toBe(j.expiry);
      expect(protectedHeader.kid).toBe(j.key_id);
    }));

  it('FetchJWTBundles: exactly our trust domain and the agent\'s keys; the crate validates the JWT-SVID with them', () =>
    rec.check(['FetchJWTBundles'], async () => {
      const o = ready();
      expect(Object.keys(o.jwt_bundles)).toEqual([TD]);
      const served = [...ref.jwtBundles[TD]!.keys].sort((a, b) => String(a.kid).localeCompare(String(b.kid)));
      expect(served.length).toBeGreaterThan(0);
      expect(o.jwt_bundles[TD]!.map((a) => a.kid)).toEqual(served.map((k) => k.kid));
      expect(o.jwt_bundles[TD]!.map((a) => a.jwk)).toEqual(served);
      // The same keys as the server's bundle document (its jwt-svid keys).
      const serverKids = ref.serverDocument.keys.filter((k) => k.use === 'jwt-svid').map((k) => k.kid).sort();
      expect(o.jwt_bundles[TD]!.map((a) => a.kid)).toEqual(serverKids);
      expect(o.jwt_bundles[TD]!.map((a) => a.kid)).toContain(o.jwt_svid.key_id);

      // The crate's offline validation (JwtSvid::parse_and_validate) against these bundles.
      expect(o.jwt_local.spiffe_id).toBe(EXPECTED_ID);
      expect(o.jwt_local.audience).toEqual([AUDIENCE]);
      expect(o.jwt_local.expiry).toBe(o.jwt_svid.expiry);
      expect(o.jwt_local.wrong_audience_error?.variant).toBe('InvalidToken(AudienceMismatch)');
      expect(o.jwt_local.tampered_error?.variant).toBe('InvalidToken(InvalidSignature)');
      // And JwtSource: the same bundles, a JWT-SVID on demand that validates against the source.
      expect(o.jwt_source).toEqual({ bundle_trust_domains: [TD], same_bundles_as_client: true, svid_spiffe_id: EXPECTED_ID, validated_spiffe_id: EXPECTED_ID });
    }));

  it('ValidateJWTSVID: the agent accepts the token for its audience and refuses it for another with InvalidArgument', () =>
    rec.check(['ValidateJWTSVID'], async () => {
      const o = ready();
      expect(o.jwt_remote.spiffe_id).toBe(EXPECTED_ID);
      expect(o.jwt_remote.audience).toEqual([AUDIENCE]);
      expect(o.jwt_remote.wrong_audience_error).toMatchObject({ variant: 'Transport::Status', grpc_code: 'invalid_argument' });
    }));

  it('PermissionDenied (no identity): a uid without an entry is refused on every call, as the crate reports it', async (ctx) => {
    const uid = currentUid();
    if (uid !== 0) {
      const reason = `not root (uid ${uid}): the program cannot be run as uid ${NOBODY_UID}, which has no entry at the agent`;
      console.warn(`interop: rust spiffe: PERMISSION_DENIED case skipped: ${reason}`);
      rec.record('PermissionDenied (no identity)', 'skip');
      ctx.skip(reason);
      return;
    }
    await rec.check(['PermissionDenied (no identity)'], async () => {
      const o = ready();
      const r = await runRust(['denied', '--audience', AUDIENCE, '--token', o.jwt_svid.token], NOBODY_UID);
      expect(r.code, explain(r)).toBe(0);
      const d = jsonLine<DeniedOutput>(r);
      expect(d.ok, explain(r)).toBe(true);
      // The crate maps PERMISSION_DENIED with "no identity issued" in its message to NoIdentityIssued.
      const denied = { variant: 'NoIdentityIssued', grpc_code: 'permission_denied', message: 'no identity issued' };
      expect(d.calls).toEqual({
        FetchX509SVID: denied,
        FetchX509Bundles: denied,
        FetchJWTSVID: denied,
        FetchJWTBundles: denied,
        ValidateJWTSVID: denied,
      });
      // X509Source retries a denial at start-up (its documented policy) until its sync timeout.
      expect(d.x509_source_error).toBe('InitialSyncTimeout');
    });
  });

  it('InvalidArgument (no header): raw tonic calls without `workload.spiffe.io: true` are refused on every RPC', () =>
    rec.check(['InvalidArgument (no header)'], async () => {
      // The crate always sends the header (its MetadataAdder interceptor) and keeps its client
      // private, so the program calls the Workload API with tonic itself (src/raw.rs).
      if (setupError !== undefined) throw setupError;
      const refused: RawOutcome = { code: 'InvalidArgument', message: NO_HEADER_MESSAGE };
      const allRefused = Object.fromEntries(WORKLOAD_RPCS.map((rpc) => [rpc, refused]));

      const r = await runRust(['no-header', '--audience', AUDIENCE]);
      expect(r.code, explain(r)).toBe(0);
      expect(r.stderr).toBe('');
      const o = jsonLine<NoHeaderOutput>(r);
      expect(o.ok, explain(r)).toBe(true);
      // The control: the same raw path and requests with the header are answered.
      expect(o.with_header).toEqual({
        FetchX509SVID: { code: 'Ok', spiffe_ids: [EXPECTED_ID] },
        FetchX509Bundles: { code: 'Ok', trust_domains: [`spiffe://${TD}`] },
        FetchJWTSVID: { code: 'Ok', spiffe_ids: [EXPECTED_ID] },
        FetchJWTBundles: { code: 'Ok', trust_domains: [`spiffe://${TD}`] },
        ValidateJWTSVID: { code: 'Ok', spiffe_id: EXPECTED_ID },
      });
      expect(o.no_header).toEqual(allRefused);

      // A caller without an entry: the header is checked before the caller is attested.
      if (currentUid() !== 0) return;
      const n = await runRust(['no-header', '--audience', AUDIENCE], NOBODY_UID);
      expect(n.code, explain(n)).toBe(0);
      const nobody = jsonLine<NoHeaderOutput>(n);
      for (const rpc of WORKLOAD_RPCS) {
        expect(nobody.with_header[rpc], `${rpc} with the header, uid ${NOBODY_UID}`).toEqual({ code: 'PermissionDenied', message: 'workloadapi: no identity issued' });
      }
      expect(nobody.no_header).toEqual(allRefused);
    }));
});
