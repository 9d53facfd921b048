// Interop: a real SPIFFE client, py-spiffe (PyPI package `spiffe`), against
// the real node agent's Workload API.
//
// test/interop/python/interop.py is a small workload written with py-spiffe's
// WorkloadApiClient, X509Source and JwtSource; it prints one JSON line with
// what it got, and this file asserts on it. The trust domain is the real
// thing (harness.ts): `anchorage server run` on a SoftHSM2 token and
// `anchorage agent run`, each its own process, one entry for this process's
// uid. Needs `npm run build`.
//
// The program runs in a venv under test/interop/.cache/python/, built once
// from test/interop/python/requirements.txt (every package pinned) and
// rebuilt when that file or the interpreter changes. The venv and the program
// are also run as uid 65534, which has no entry: the interpreter chosen is one
// that uid can reach (pyenv's under /root is not), directories 0755.
//
// Without Python >= 3.11 with venv the suite is skipped with a warning, except
// in CI (CI=true), where it fails. ANCHORAGE_INTEROP_PYTHON names the
// interpreter to use instead of looking for one (e.g. a path that does not
// exist, to see the skip).
import { createHash, createPublicKey, verify as cryptoVerify, X509Certificate, constants as cryptoConstants, type JsonWebKey } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cliAsync } from '../helpers/process.js';
import {
  BUILD_CACHE,
  cacheDir,
  cachedBuild,
  choosePython,
  currentUid,
  describeWithToolchain,
  IN_CI,
  INTEROP_DIR,
  interopRecorder,
  jsonLine,
  NOBODY_UID,
  openDir,
  pythonEnv,
  run,
  startTrustDomain,
  type PythonInfo,
  type RealTrustDomain,
  type RunResult,
} from './harness.js';

const PY_DIR = join(INTEROP_DIR, 'python');
const PROGRAM = join(PY_DIR, 'interop.py');
const REQUIREMENTS = join(PY_DIR, 'requirements.txt');
/** The oldest Python the pinned set installs on (pycparser 3.12 needs 3.11; spiffe itself 3.10). */
const MIN_PYTHON = '3.11';

const TD = 'py-interop.test';
const EXPECTED_ID = `spiffe://${TD}/interop/py-spiffe`;
const AUDIENCE = 'spiffe://example.test/interop-audience';
const X509_SVID_TTL_S = 3600;
const JWT_SVID_TTL_S = 300;

// --- the interpreter -----------------------------------------------------------------

const choice = choosePython({ min: MIN_PYTHON, purpose: 'py-spiffe (python/requirements.txt)', reachableByOthers: true });

// --- the venv ------------------------------------------------------------------------

/** Directories 0755, files at least 0644 (0755 if executable): the venv is also run as uid 65534. */
function openUp(path: string): void {
  const st = statSync(path);
  if (st.isDirectory()) {
    if ((st.mode & 0o755) !== 0o755) chmodSync(path, (st.mode & 0o7777) | 0o755);
    for (const e of readdirSync(path, { withFileTypes: true })) if (!e.isSymbolicLink()) openUp(join(path, e.name));
  } else if (st.isFile()) {
    const want = st.mode & 0o100 ? 0o755 : 0o644;
    if ((st.mode & want) !== want) chmodSync(path, (st.mode & 0o7777) | want);
  }
}

/** The venv's python, built (or rebuilt) when the requirements or the interpreter changed; whether it was built now. */
async function ensureVenv(py: PythonInfo): Promise<{ python: string; built: boolean }> {
  const root = cacheDir('python');
  // Reachable by uid 65534 whatever the umask was when they were made.
  for (const d of [BUILD_CACHE, root]) chmodSync(d, 0o755);
  const venv = join(root, 'venv');
  const python = join(venv, 'bin', 'python');
  const step = async (what: string, cmd: string, args: string[], timeoutMs: number): Promise<void> => {
    const r = await run(cmd, args, { env: pythonEnv(), cwd: PY_DIR, timeoutMs });
    if (r.code !== 0) throw new Error(`interop: ${what} failed (exit ${r.code}, signal ${r.signal}):\n${r.stderr}${r.stdout}`);
  };
  const built = await cachedBuild(
    venv,
    [readFileSync(REQUIREMENTS), py.executable, py.version],
    async () => {
      await step('python -m venv', py.executable, ['-m', 'venv', venv], 60_000);
      // Wheels only: no compiler, no sdist builds in CI.
      await step('pip install -r requirements.txt', python, ['-m', 'pip', 'install', '--no-input', '--only-binary=:all:', '--require-virtualenv', '-r', REQUIREMENTS], 200_000);
      await step('pip check', python, ['-m', 'pip', 'check'], 30_000);
      openUp(venv);
    },
    [python],
  );
  return { python, built };
}

/** The `spiffe==X` pin of requirements.txt. */
function pinnedSpiffeVersion(): string {
  const m = /^spiffe==(\S+)\s*$/m.exec(readFileSync(REQUIREMENTS, 'utf8'));
  if (!m) throw new Error('interop: test/interop/python/requirements.txt does not pin spiffe==X');
  return m[1]!;
}

// --- what the program prints ---------------------------------------------------------

interface PyError {
  type: string | null;
  message?: string;
  grpc_code?: string;
  grpc_details?: string;
  causes?: string[];
  unexpected_answer?: string;
  seconds?: number;
}
type Part<T> = T | { error: PyError };

interface IdentityOutput {
  mode: 'identity';
  versions: Record<string, string>;
  x509: Part<{
    spiffe_id: string;
    svid_ids: string[];
    leaf_uri_sans: string[];
    chain_pem: string[];
    leaf_serial: string;
    leaf_not_before: string;
    leaf_not_after: string;
    private_key_type: string;
    private_key_public_spki_b64: string;
    key_matches_leaf: boolean;
    key_signs_for_leaf: boolean;
    bundle_trust_domains: string[];
    bundle_authorities_pem: string[] | null;
    verified: Part<{ length: number; anchor_sha256: string }>;
    policy_verified: Part<{ length: number }>;
  }>;
  x509_source: Part<{ spiffe_id: string; leaf_serial: string; bundle_trust_domains: string[]; bundle_authorities_pem: string[] | null }>;
  x509_bundles: Part<{ trust_domains: string[]; authorities_pem: Record<string, string[]> }>;
  jwt_bundles: Part<{ trust_domains: string[]; keys: Record<string, Record<string, string>> }>;
  jwt_svid: Part<{ token: string; spiffe_id: string; audience: string[]; expiry: number; header: Record<string, unknown>; claims: Record<string, unknown> }>;
  jwt_local: Part<{ spiffe_id: string; audience: string[]; expiry: number; wrong_audience_error: PyError | null; tampered_error: PyError | null }>;
  jwt_source: Part<{ trust_domains: string[]; keys: Record<string, string> | null; svid_spiffe_id: string; validated_spiffe_id: string | null }>;
  validate: Part<{
    spiffe_id: string;
    audience: string[];
    response_spiffe_id: string;
    response_claims: Record<string, unknown>;
    wrong_audience_error: PyError | null;
  }>;
}

const RPCS = ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTSVID', 'FetchJWTBundles', 'ValidateJWTSVID'] as const;

type DeniedOutput = { mode: 'denied' } & Record<(typeof RPCS)[number] | 'X509Source', PyError>;

interface NoHeaderOutput {
  mode: 'no-header';
  stubs: string;
  without_header: Record<string, { code: string; details?: string }>;
  header_false: Record<string, { code: string; details?: string }>;
  with_header_FetchX509Bundles: { code: string; details?: string };
}

/** A part of the output, or its error as this test's failure. */
function ok<T>(p: Part<T> | undefined, what: string): T {
  if (p === undefined) throw new Error(`interop: the program printed no ${what}`);
  if (typeof p === 'object' && p !== null && 'error' in p) throw new Error(`interop: ${what} failed in py-spiffe: ${JSON.stringify(p.error)}`);
  return p;
}

// --- certificates and keys -----------------------------------------------------------

function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Base64 DER of each certificate, sorted: compares PEMs whatever their line wrapping. */
function derSet(pems: string[]): string[] {
  return pems.map((p) => new X509Certificate(p).raw.toString('base64')).sort();
}

function spkiB64(key: ReturnType<typeof createPublicKey>): string {
  return key.export({ type: 'spki', format: 'der' }).toString('base64');
}

/** Verifies a compact JWS with node:crypto (independently of PyJWT). */
function jwsVerifies(token: string, jwk: JsonWebKey): boolean {
  const [h, p, s] = token.split('.');
  if (!h || !p || !s) return false;
  const alg = (JSON.parse(Buffer.from(h, 'base64url').toString()) as { alg: string }).alg;
  const hash = `sha${alg.slice(2)}`;
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s, 'base64url');
  if (alg.startsWith('ES')) return cryptoVerify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  if (alg.startsWith('RS')) return cryptoVerify(hash, data, key, sig);
  if (alg.startsWith('PS')) return cryptoVerify(hash, data, { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: cryptoConstants.RSA_PSS_SALTLEN_DIGEST }, sig);
  throw new Error(`interop: unexpected JWT alg ${alg}`);
}

interface SpiffeBundleDoc {
  keys: (JsonWebKey & { use: string; kid?: string; x5c?: string[] })[];
}

// --- the suite -----------------------------------------------------------------------

describeWithToolchain(`py-spiffe against the anchorage node agent`, choice.unusable, () => {
  const recorder = interopRecorder('py-spiffe');
  const uid = currentUid();
  let venvPython: string | undefined;
  let venvError: unknown;
  let td: RealTrustDomain | undefined;
  let tdError: unknown;
  let cleanup: (() => void) | undefined;
  /** `anchorage bundle show` in both formats. */
  let bundlePem = '';
  let bundleDoc: SpiffeBundleDoc | undefined;
  let identity: { r: RunResult; out: IdentityOutput; before: number } | undefined;
  let identityError: unknown;

  beforeAll(async () => {
    try {
      const started = Date.now();
      const v = await ensureVenv(choice.python!);
      venvPython = v.python;
      console.info(`interop: py-spiffe venv ${v.built ? 'built' : 'cached'} (${choice.python!.executable} ${choice.python!.version}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } catch (err) {
      venvError = err;
    }
  }, 300_000);

  beforeAll(async () => {
    try {
      const d = openDir('anchorage-py-interop-');
      cleanup = d.cleanup;
      const started = Date.now();
      td = await startTrustDomain(d.dir, {
        trustDomain: TD,
        entries: [{ spiffeId: EXPECTED_ID, selectors: [`unix:uid:${uid}`], hint: 'interop' }],
        x509SvidTtl: '1h', // X509_SVID_TTL_S
        jwtSvidTtl: '5m', // JWT_SVID_TTL_S
      });
      console.info(`interop: started the trust domain in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      const pem = await cliAsync(['bundle', 'show', '--format', 'pem', '--socket', td.adminSocket], td.env);
      if (pem.code !== 0) throw new Error(`interop: anchorage bundle show --format pem: exit ${pem.code}: ${pem.stderr}`);
      bundlePem = pem.stdout;
      const doc = await cliAsync(['bundle', 'show', '--format', 'spiffe', '--socket', td.adminSocket], td.env);
      if (doc.code !== 0) throw new Error(`interop: anchorage bundle show --format spiffe: exit ${doc.code}: ${doc.stderr}`);
      bundleDoc = JSON.parse(doc.stdout) as SpiffeBundleDoc;
    } catch (err) {
      tdError = err;
    }
  }, 120_000);

  afterAll(async () => {
    await td?.close();
    cleanup?.();
  }, 60_000);

  const ready = (): { python: string; td: RealTrustDomain } => {
    if (venvError !== undefined) throw venvError;
    if (tdError !== undefined) throw tdError;
    return { python: venvPython!, td: td! };
  };

  const runPy = (args: string[], opts: { uid?: number } = {}): Promise<RunResult> => {
    const { python, td: t } = ready();
    return run(python, [PROGRAM, ...args, '--socket', t.endpoint], { env: pythonEnv({ GRPC_VERBOSITY: 'ERROR' }), cwd: '/', uid: opts.uid, timeoutMs: 90_000 });
  };

  const explain = (r: RunResult): string => `exit ${r.code}, signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}${td?.diagnostics() ?? ''}`;

  /** The identity run, once, shared by the tests below. */
  const identityRun = async (): Promise<{ out: IdentityOutput; before: number }> => {
    if (identityError !== undefined) throw identityError;
    if (identity) return identity;
    try {
      const before = Date.now() / 1000;
      const r = await runPy(['identity', '--expect-id', EXPECTED_ID, '--audience', AUDIENCE]);
      expect(r.code, explain(r)).toBe(0);
      const out = jsonLine<IdentityOutput>(r);
      expect(out.mode).toBe('identity');
      expect(out.versions.spiffe, 'the installed py-spiffe').toBe(pinnedSpiffeVersion());
      identity = { r, out, before };
      return identity;
    } catch (err) {
      identityError = err;
      throw err;
    }
  };

  it('FetchX509SVID: the X509-SVID is ours, its chain verifies against the bundle sent with it, its key matches', () =>
    recorder.check(['FetchX509SVID'], async () => {
      const { out, before } = await identityRun();
      const x = ok(out.x509, 'fetch_x509_context');
      expect(x.spiffe_id).toBe(EXPECTED_ID);
      expect(x.svid_ids).toEqual([EXPECTED_ID]);
      expect(x.leaf_uri_sans).toEqual([EXPECTED_ID]);
      // Leaf + the agent-facing intermediate; the root is in the bundle.
      expect(x.chain_pem).toHaveLength(2);
      expect(x.bundle_trust_domains).toEqual([TD]);
      expect(derSet(x.bundle_authorities_pem ?? [])).toEqual(derSet(pemBlocks(bundlePem)));

      // Verified in Python (cryptography; py-spiffe has no X.509-SVID verifier): leaf, intermediate, anchor.
      expect(ok(x.verified, 'chain verification in Python').length).toBe(3);
      expect(ok(x.policy_verified, "cryptography's path builder (client profile)").length).toBe(3);
      expect(x.key_matches_leaf).toBe(true);
      expect(x.key_signs_for_leaf).toBe(true);

      // And again here, with node:crypto, from the PEMs it printed.
      const chain = x.chain_pem.map((p) => new X509Certificate(p));
      const [leaf, intermediate] = chain as [X509Certificate, X509Certificate];
      const anchors = pemBlocks(bundlePem).map((p) => new X509Certificate(p));
      const now = new Date();
      for (const c of [...chain, ...anchors]) {
        expect(new Date(c.validFrom).getTime()).toBeLessThanOrEqual(now.getTime());
        expect(new Date(c.validTo).getTime()).toBeGreaterThan(now.getTime());
      }
      expect(leaf.ca).toBe(false);
      expect(intermediate.ca).toBe(true);
      expect(leaf.subjectAltName).toBe(`URI:${EXPECTED_ID}`);
      expect(leaf.checkIssued(intermediate)).toBe(true);
      expect(leaf.verify(intermediate.publicKey)).toBe(true);
      const anchor = anchors.find((a) => intermediate.checkIssued(a) && intermediate.verify(a.publicKey));
      expect(anchor, 'an authority of `anchorage bundle show` issued the intermediate').toBeDefined();
      expect(anchor!.ca).toBe(true);
      expect(createHash('sha256').update(anchor!.raw).digest('hex')).toBe(ok(x.verified, 'chain verification in Python').anchor_sha256);
      expect(spkiB64(leaf.publicKey)).toBe(x.private_key_public_spki_b64);
      expect(leaf.serialNumber.toLowerCase().replace(/^0+/, '')).toBe(x.leaf_serial);
      const notAfter = Date.parse(x.leaf_not_after) / 1000;
      expect(notAfter).toBe(Math.floor(new Date(leaf.validTo).getTime() / 1000));
      expect(notAfter).toBeGreaterThan(before);
      expect(notAfter).toBeLessThanOrEqual(before + X509_SVID_TTL_S + 5);

      // X509Source: the same SVID and bundle through the library's watcher.
      const s = ok(out.x509_source, 'X509Source');
      expect(s.spiffe_id).toBe(EXPECTED_ID);
      expect(s.leaf_serial).toBe(x.leaf_serial);
      expect(s.bundle_trust_domains).toEqual([TD]);
      expect(derSet(s.bundle_authorities_pem ?? [])).toEqual(derSet(pemBlocks(bundlePem)));
    }));

  it('FetchX509Bundles: exactly our trust domain, with the authorities `anchorage bundle show` reports', () =>
    recorder.check(['FetchX509Bundles'], async () => {
      const { out } = await identityRun();
      const b = ok(out.x509_bundles, 'fetch_x509_bundles');
      expect(b.trust_domains).toEqual([TD]);
      expect(Object.keys(b.authorities_pem)).toEqual([TD]);
      expect(pemBlocks(bundlePem).length).toBeGreaterThan(0);
      expect(derSet(b.authorities_pem[TD]!)).toEqual(derSet(pemBlocks(bundlePem)));
      // The same as the bundle FetchX509SVID sent with the SVID.
      expect(derSet(b.authorities_pem[TD]!)).toEqual(derSet(ok(out.x509, 'fetch_x509_context').bundle_authorities_pem ?? []));
    }));

  it('FetchJWTSVID: sub is our SPIFFE ID, aud is the audience, it expires within the JWT-SVID TTL', () =>
    recorder.check(['FetchJWTSVID'], async () => {
      const { out, before } = await identityRun();
      const j = ok(out.jwt_svid, 'fetch_jwt_svid');
      expect(j.spiffe_id).toBe(EXPECTED_ID);
      expect(j.audience).toEqual([AUDIENCE]);
      expect(j.claims.sub).toBe(EXPECTED_ID);
      // A single audience may be a string or a one-element array (RFC 7519); normalize.
      expect([j.claims.aud].flat()).toEqual([AUDIENCE]);
      expect(j.claims.exp).toBe(j.expiry);
      expect(j.expiry).toBeGreaterThan(before);
      expect(j.expiry).toBeLessThanOrEqual(before + JWT_SVID_TTL_S + 5);
      expect(typeof j.header.kid).toBe('string');
      // The JWT-SVID verifies, here with node:crypto, under the key of its kid in `anchorage bundle show --format spiffe`.
      const jwk = bundleDoc!.keys.find((k) => k.use === 'jwt-svid' && k.kid === j.header.kid);
      expect(jwk, `kid ${String(j.header.kid)} in the trust domain's bundle`).toBeDefined();
      expect(jwsVerifies(j.token, jwk!)).toBe(true);
      // JwtSource fetches the same way.
      const s = ok(out.jwt_source, 'JwtSource');
      expect(s.svid_spiffe_id).toBe(EXPECTED_ID);
    }));

  it('FetchJWTBundles: exactly our trust domain and its JWT keys; py-spiffe validates the JWT-SVID with them', () =>
    recorder.check(['FetchJWTBundles'], async () => {
      const { out } = await identityRun();
      const b = ok(out.jwt_bundles, 'fetch_jwt_bundles');
      expect(b.trust_domains).toEqual([TD]);
      expect(Object.keys(b.keys)).toEqual([TD]);
      const expected = Object.fromEntries(
        bundleDoc!.keys
          .filter((k) => k.use === 'jwt-svid')
          .map((k) => [k.kid!, spkiB64(createPublicKey({ key: k, format: 'jwk' }))] as const)
          .sort(([a], [z]) => a.localeCompare(z)),
      );
      expect(Object.keys(expected).length).toBeGreaterThan(0);
      expect(b.keys[TD]).toEqual(expected);

      // JwtSvid.parse_and_validate with the bundle of our trust domain.
      const l = ok(out.jwt_local, 'JwtSvid.parse_and_validate');
      expect(l.spiffe_id).toBe(EXPECTED_ID);
      expect(l.audience).toEqual([AUDIENCE]);
      expect(l.expiry).toBe(ok(out.jwt_svid, 'fetch_jwt_svid').expiry);
      // Another audience: PyJWT's InvalidAudienceError, as py-spiffe's InvalidTokenError.
      expect(l.wrong_audience_error).toMatchObject({ type: 'InvalidTokenError', causes: ['InvalidAudienceError'] });
      // A signature flipped by one bit.
      expect(l.tampered_error).toMatchObject({ type: 'InvalidTokenError', causes: ['InvalidSignatureError'] });

      // JwtSource: the same bundle, and validation with it.
      const s = ok(out.jwt_source, 'JwtSource');
      expect(s.trust_domains).toEqual([TD]);
      expect(s.keys).toEqual(expected);
      expect(s.validated_spiffe_id).toBe(EXPECTED_ID);
    }));

  it('ValidateJWTSVID: the Workload API accepts the JWT-SVID for its audience and refuses it for another', () =>
    recorder.check(['ValidateJWTSVID'], async () => {
      const { out } = await identityRun();
      const v = ok(out.validate, 'validate_jwt_svid');
      expect(v.spiffe_id).toBe(EXPECTED_ID);
      expect(v.audience).toEqual([AUDIENCE]);
      // The server's own answer (py-spiffe drops it): the subject and the claims.
      expect(v.response_spiffe_id).toBe(EXPECTED_ID);
      const j = ok(out.jwt_svid, 'fetch_jwt_svid');
      expect(v.response_claims.sub).toBe(EXPECTED_ID);
      expect([v.response_claims.aud].flat()).toEqual([AUDIENCE]);
      expect(v.response_claims.exp).toBe(j.expiry);
      // Another audience: INVALID_ARGUMENT, which py-spiffe raises as ValidateJwtSvidError.
      expect(v.wrong_audience_error).toMatchObject({ type: 'ValidateJwtSvidError', grpc_code: 'INVALID_ARGUMENT' });
      expect(v.wrong_audience_error!.message).toMatch(/^JWT SVID is not valid: Could not process response from the Workload API: .* \(StatusCode\.INVALID_ARGUMENT\)$/);
    }));

  it('PermissionDenied (no identity): uid 65534, which has no entry, is refused on every RPC, as py-spiffe reports it', (ctx) => {
    const rpc = 'PermissionDenied (no identity)';
    // Only root can start a process as another uid; and that uid must be able to run the venv's Python.
    const skip =
      uid !== 0
        ? `not root (uid ${uid}): the program cannot be run as uid ${NOBODY_UID}, which has no entry at the agent`
        : !IN_CI
          ? choice.notForNobody
          : undefined;
    if (skip !== undefined) {
      console.warn(`interop: py-spiffe: ${rpc} skipped: ${skip}`);
      recorder.record(rpc, 'skip');
      ctx.skip(skip);
      return;
    }
    return recorder.check([rpc], async () => {
      if (choice.notForNobody !== undefined) throw new Error(`interop: ${choice.notForNobody}, and CI=true`);
      const { out: idOut } = await identityRun();
      const token = ok(idOut.jwt_svid, 'fetch_jwt_svid').token;
      const r = await runPy(['denied', '--audience', AUDIENCE, '--token', token], { uid: NOBODY_UID });
      expect(r.code, explain(r)).toBe(0);
      const out = jsonLine<DeniedOutput>(r);
      // py-spiffe wraps the gRPC error in its own exception per call, "<prefix>: Could not process
      // response from the Workload API: <details> (StatusCode.<code>)", the RpcError as its cause.
      const reported: Record<(typeof RPCS)[number], [string, string]> = {
        FetchX509SVID: ['FetchX509SvidError', 'Error fetching X.509 SVID'],
        FetchX509Bundles: ['FetchX509BundleError', 'Error fetching X.509 Bundle'],
        FetchJWTSVID: ['FetchJwtSvidError', 'Error fetching JWT SVID'],
        FetchJWTBundles: ['FetchJwtBundleError', 'Error fetching JWT Bundle'],
        ValidateJWTSVID: ['ValidateJwtSvidError', 'JWT SVID is not valid'],
      };
      for (const name of RPCS) {
        const [type, prefix] = reported[name];
        const e = out[name];
        expect(e, name).toMatchObject({ type, grpc_code: 'PERMISSION_DENIED' });
        expect(e.grpc_details, name).toMatch(/\S/);
        expect(e.message, name).toBe(`${prefix}: Could not process response from the Workload API: ${e.grpc_details} (StatusCode.PERMISSION_DENIED)`);
      }
      // X509Source retries PERMISSION_DENIED (it only gives up on CANCELLED and INVALID_ARGUMENT),
      // so it ends in its start-up timeout (3 s in the program), not in the refusal.
      expect(out.X509Source).toMatchObject({ type: 'X509SourceError', message: 'X.509 Source error: Failed to initialize X509Source: Timeout waiting for the first update.' });
      expect(out.X509Source.seconds).toBeGreaterThanOrEqual(2.9);
      expect(out.X509Source.seconds).toBeLessThan(15);
    });
  }, 120_000);

  it('InvalidArgument (no header): raw grpcio calls without `workload.spiffe.io: true` get INVALID_ARGUMENT', () =>
    recorder.check(['InvalidArgument (no header)'], async () => {
      ready();
      const r = await runPy(['no-header', '--audience', AUDIENCE]);
      expect(r.code, explain(r)).toBe(0);
      const out = jsonLine<NoHeaderOutput>(r);
      expect(out.stubs).toBe('spiffe._proto');
      for (const name of RPCS) {
        expect(out.without_header[name]?.code, `${name} without the header`).toBe('INVALID_ARGUMENT');
        expect(out.without_header[name]?.details, `${name} without the header`).toMatch(/\S/);
        expect(out.header_false[name]?.code, `${name} with workload.spiffe.io: false`).toBe('INVALID_ARGUMENT');
      }
      // The same channel and stub with the header: answered.
      expect(out.with_header_FetchX509Bundles).toEqual({ code: 'OK' });
    }));
});
