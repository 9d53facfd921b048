// Interop: the official Java SPIFFE library, java-spiffe (io.spiffe:java-spiffe-core),
// against the real node agent's Workload API.
//
// test/interop/java/ is a small Maven project (every version pinned) whose one
// class does what a Java workload does with java-spiffe — DefaultX509Source,
// DefaultJwtSource, DefaultWorkloadApiClient, X509SvidValidator,
// JwtSvid.parseAndValidate — and, for the header check, a raw grpc-java call
// with the stubs java-spiffe ships. It prints one JSON line; this file compares
// it with what the agent serves (fetched here with grpc-js) and re-checks the
// certificates and keys with node:crypto.
//
// Every check runs twice:
//  - as shipped: java-spiffe opens its own channel (this is what the README's
//    interop table records);
//  - diagnostic: the same java-spiffe client and sources over a channel that
//    sends `:authority: localhost` (java/src/main/java/io/spiffe/workloadapi/
//    LocalhostAuthorityClient.java). grpc-java sends the socket path as the
//    HTTP/2 :authority on a Unix socket, which Node's HTTP/2 server (nghttp2)
//    resets with PROTOCOL_ERROR; the Workload API rewrites such connections
//    (workload-api/grpc-java/). Should the as-shipped variant fail while
//    this one passes, that rewrite is what broke. Not recorded in the table.
//
// The jar is built once with Maven into test/interop/.cache/java/ (gitignored)
// and rebuilt only when pom.xml or a source file changes (a hash of them is
// kept beside the jar). The trust domain is the real thing (harness.ts):
// `anchorage server run` on SoftHSM2 and `anchorage agent run`, one entry for
// this process's uid; the no-identity case runs the jar as uid 65534.
//
// Without Java (>= the version the library targets) or Maven the suite is
// skipped with a warning, except in CI (CI=true), where it fails.
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate, type JsonWebKey } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { JWTBundlesResponse__Output } from '@anchorage/client/proto/gen/JWTBundlesResponse';
import type { X509BundlesResponse__Output } from '@anchorage/client/proto/gen/X509BundlesResponse';
import type { X509SVIDResponse__Output } from '@anchorage/client/proto/gen/X509SVIDResponse';
import { splitDer } from '../helpers/test-ca.js';
import {
  cacheDir,
  cachedBuild,
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

const JAVA_DIR = join(INTEROP_DIR, 'java');
const POM = join(JAVA_DIR, 'pom.xml');
const TD = 'java-interop.test';
const EXPECTED_ID = `spiffe://${TD}/interop/java-spiffe`;
const HINT = 'interop';
const AUDIENCE = 'spiffe://example.test/java-interop-audience';
/** server.yaml defaults in harness.ts (x509_svid_ttl 1h, jwt_svid_ttl 5m). */
const X509_SVID_TTL = 3600;
const JWT_SVID_TTL = 300;
/** Maven 3.6.3 is the oldest the pinned compiler and shade plugins run on. */
const MIN_MAVEN = '3.6.3';

// --- the toolchain -------------------------------------------------------------------

function pomProperty(name: string): string {
  const m = new RegExp(`<${name.replace(/\./g, '\\.')}>([^<]+)</`).exec(readFileSync(POM, 'utf8'));
  if (!m) throw new Error(`interop: test/interop/java/pom.xml has no <${name}> property`);
  return m[1]!.trim();
}

/** The java-spiffe version pom.xml pins, e.g. "0.8.17". */
const JAVA_SPIFFE_VERSION = pomProperty('java-spiffe.version');
/** The Java release the program and java-spiffe target (8: java-spiffe's Gradle metadata says org.gradle.jvm.version 8). */
const JAVA_RELEASE = Number(pomProperty('maven.compiler.release'));

/** `java -version` as one line, e.g. `openjdk version "17.0.15" 2025-04-15`; part of the build hash. */
let javaVersionLine = '';

/** Why the suite cannot run here, or undefined when it can. */
function javaUnusable(): string | undefined {
  const j = spawnSync('java', ['-version'], { encoding: 'utf8', timeout: 30_000 });
  if (j.error) return 'Java not found (java on PATH)';
  if (j.status !== 0) return `"java -version" failed: ${j.stderr.trim()}`;
  javaVersionLine = j.stderr.split('\n')[0]!.trim();
  const v = /version "([^"]+)"/.exec(j.stderr)?.[1];
  if (!v) return `cannot read the Java version from "${javaVersionLine}"`;
  // "1.8.0_392" is Java 8; "17.0.15" is 17.
  const major = v.startsWith('1.') ? Number(v.split('.')[1]) : Number(v.split(/[.+-]/)[0]);
  if (!(major >= JAVA_RELEASE)) return `Java ${v} is older than Java ${JAVA_RELEASE}, which java-spiffe ${JAVA_SPIFFE_VERSION} needs`;
  const m = spawnSync('mvn', ['-v', '-B'], { encoding: 'utf8', timeout: 60_000 });
  if (m.error) return 'Maven not found (mvn on PATH)';
  if (m.status !== 0) return `"mvn -v" failed: ${m.stderr.trim() || m.stdout.trim()}`;
  const mv = /Apache Maven (\S+)/.exec(m.stdout)?.[1];
  if (!mv) return `cannot read the Maven version from "mvn -v"`;
  if (!versionAtLeast(mv, MIN_MAVEN)) return `Maven ${mv} is older than ${MIN_MAVEN}, which the pinned Maven plugins need`;
  return undefined;
}

const unusable = javaUnusable();

// --- the build -----------------------------------------------------------------------

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'target') out.push(...filesUnder(p));
    } else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

/** Everything the jar is made from: pom.xml, src/, the JDK, and the Maven command. */
function buildInputs(mvnArgs: string[]): (string | Buffer)[] {
  return [...filesUnder(JAVA_DIR).flatMap((f) => [relative(JAVA_DIR, f), readFileSync(f)]), javaVersionLine, mvnArgs.join(' ')];
}

/**
 * The runnable jar, built with Maven into the build cache unless the cache
 * already holds one made from the same inputs.
 */
async function buildJar(): Promise<{ jar: string; built: boolean; seconds: number }> {
  const target = join(cacheDir('java'), 'target');
  const jar = join(target, 'java-spiffe-interop.jar');
  const args = ['-B', '-q', '-Dstyle.color=never', `-DbuildDir=${target}`, 'package'];
  const started = Date.now();
  const built = await cachedBuild(
    target,
    buildInputs(args),
    async () => {
      const r = await run('mvn', args, { cwd: JAVA_DIR, timeoutMs: 580_000 });
      if (r.code !== 0 || !existsSync(jar)) {
        throw new Error(`interop: mvn ${args.join(' ')} failed (exit ${r.code}, signal ${r.signal}):\n${r.stdout}${r.stderr}`);
      }
    },
    [jar],
  );
  return { jar, built, seconds: (Date.now() - started) / 1000 };
}

// --- what the program prints ---------------------------------------------------------

/** How a call ended: {returned} on success, else the exception and the gRPC status found in its causes. */
interface Attempt {
  returned?: string;
  exception?: string;
  message?: string;
  causes?: string[];
  grpc_code?: string;
  grpc_description?: string;
}

interface JavaOutput {
  ok: boolean;
  mode: string;
  java_spiffe_version: string;
  grpc_version: string;
  java_version: string;
  user: string;
  channel: string;
  // failure
  step?: string;
  error?: Attempt;
  // identity
  spiffe_id?: string;
  hint?: string;
  chain?: string[];
  leaf_not_after?: number;
  private_key_algorithm?: string;
  private_key_pkcs8?: string;
  chain_verified_by_x509_source?: boolean;
  spiffe_id_accepted?: boolean;
  other_spiffe_id_rejected?: boolean;
  private_key_matches_leaf?: boolean;
  x509_source_bundle?: string[];
  x509_context_spiffe_ids?: string[];
  x509_context_bundles?: Record<string, string[]>;
  x509_bundles?: Record<string, string[]>;
  chain_verified_by_x509_bundles?: boolean;
  jwt_bundles?: Record<string, Record<string, string>>;
  jwt?: { token: string; spiffe_id: string; audience: string[]; expiry: number; issued_at: number | null; hint: string | null };
  jwt_source_bundle?: Record<string, string>;
  jwt_validated_by_jwt_source?: string;
  jwt_validated_locally?: string;
  jwt_validated_locally_audience?: string[];
  jwt_local_wrong_audience?: Attempt;
  jwt_validated_by_workload_api?: string;
  jwt_workload_api_wrong_audience?: Attempt;
  // denied
  fetch_x509_context?: Attempt;
  fetch_x509_bundles?: Attempt;
  fetch_jwt_svid?: Attempt;
  fetch_jwt_bundles?: Attempt;
  validate_jwt_svid?: Attempt;
  x509_source?: Attempt;
  x509_source_watch_errors?: string[];
  jwt_source?: Attempt;
  jwt_source_watch_errors?: string[];
  // no-header
  authority?: string;
  fetch_x509_svid_no_header?: Attempt;
  fetch_jwt_svid_no_header?: Attempt;
  fetch_x509_svid_header_false?: Attempt;
  fetch_x509_svid_with_header?: Attempt;
}

interface JavaRun extends RunResult {
  out: JavaOutput;
}

// --- what the agent serves (read here with grpc-js) ----------------------------------

interface Served {
  x509: X509SVIDResponse__Output;
  x509Bundles: X509BundlesResponse__Output;
  jwtBundles: JWTBundlesResponse__Output;
}

/** The first message of a server stream of the Workload API, with the security header. */
function firstMessage<T>(socket: string, open: (client: InstanceType<ReturnType<typeof loadWorkloadProto>['SpiffeWorkloadAPI']>, md: grpc.Metadata) => grpc.ClientReadableStream<T>): Promise<T> {
  const client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socket}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return new Promise<T>((resolve, reject) => {
    const call = open(client, md);
    call.once('data', (m: T) => {
      resolve(m);
      call.cancel();
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) reject(e);
    });
  }).finally(() => client.close());
}

async function served(td: RealTrustDomain): Promise<Served> {
  const x509 = await waitForSvid(td.workloadSocket, EXPECTED_ID, 30_000);
  const deadline = { deadline: Date.now() + 10_000 };
  const x509Bundles = await firstMessage<X509BundlesResponse__Output>(td.workloadSocket, (c, md) => c.FetchX509Bundles({}, md, deadline));
  const jwtBundles = await firstMessage<JWTBundlesResponse__Output>(td.workloadSocket, (c, md) => c.FetchJWTBundles({}, md, deadline));
  return { x509, x509Bundles, jwtBundles };
}

const b64 = (der: Uint8Array): string => Buffer.from(der).toString('base64');
const sortedB64 = (ders: Uint8Array[]): string[] => ders.map(b64).sort();
/** Key ID -> base64 SubjectPublicKeyInfo DER of a JWKS, as the program prints a JWT bundle. */
function jwksAuthorities(jwks: Buffer): Record<string, string> {
  const keys = (JSON.parse(jwks.toString('utf8')) as { keys: (JsonWebKey & { kid?: string })[] }).keys;
  const out: Record<string, string> = {};
  for (const k of keys) {
    if (!k.kid) throw new Error(`interop: the agent's JWT bundle has a key without kid: ${JSON.stringify(k)}`);
    out[k.kid] = b64(createPublicKey({ key: k, format: 'jwk' }).export({ type: 'spki', format: 'der' }));
  }
  return out;
}

function decodeJwtPart(part: string | undefined): Record<string, unknown> {
  return JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

// --- the suite -----------------------------------------------------------------------

/** How the program reaches the Workload API (its --channel flag). */
interface ChannelVariant {
  channel: 'library' | 'authority-localhost';
  title: string;
  /** Whether the outcomes go into the README's interop table (only java-spiffe as shipped does). */
  recorded: boolean;
}

const VARIANTS: ChannelVariant[] = [
  { channel: 'library', title: 'as shipped (java-spiffe opens its own channel)', recorded: true },
  {
    channel: 'authority-localhost',
    title: 'diagnostic: java-spiffe over a channel sending ":authority: localhost"',
    recorded: false,
  },
];

/** What grpc-java's reset looks like when the agent's HTTP/2 layer refuses a request before any handler runs. */
const AUTHORITY_RESET = 'RST_STREAM closed stream. HTTP/2 error code: PROTOCOL_ERROR';
const AUTHORITY_HINT =
  '\n\nNOTE: grpc-java sends the socket path as the HTTP/2 :authority on a Unix socket, and the agent\'s HTTP/2 ' +
  'server (Node, nghttp2) resets such a stream with PROTOCOL_ERROR before the Workload API sees it. The ' +
  '"authority-localhost" variant of this suite shows the same calls succeed with ":authority: localhost".';

describeWithToolchain(`java-spiffe ${JAVA_SPIFFE_VERSION} against the node agent's Workload API`, unusable, () => {
  const recorder = interopRecorder('java-spiffe');
  let tmp: { dir: string; cleanup(): void } | undefined;
  let td: RealTrustDomain | undefined;
  let jar: string;
  /** A 0777 HOME and java.io.tmpdir for the JVM (netty unpacks its epoll library there), whatever the uid. */
  let jvmHome: string;
  let agent: Served;
  let setupError: unknown;

  beforeAll(async () => {
    try {
      const build = await buildJar();
      console.info(
        build.built
          ? `interop: built the java-spiffe program with Maven in ${build.seconds.toFixed(1)} s`
          : `interop: reused the cached java-spiffe build (pom.xml and sources unchanged; checked in ${build.seconds.toFixed(2)} s)`,
      );
      tmp = openDir('anchorage-java-interop-');
      // The jar is copied out of the repository so that uid 65534 can read it wherever the work tree is.
      jar = join(tmp.dir, 'java-spiffe-interop.jar');
      copyFileSync(build.jar, jar);
      chmodSync(jar, 0o644);
      jvmHome = join(tmp.dir, 'jvm-home');
      mkdirSync(jvmHome);
      chmodSync(jvmHome, 0o777);
      const tdDir = join(tmp.dir, 'td');
      mkdirSync(tdDir, { mode: 0o755 });
      chmodSync(tdDir, 0o755);

      const started = Date.now();
      td = await startTrustDomain(tdDir, { trustDomain: TD, entries: [{ spiffeId: EXPECTED_ID, selectors: [`unix:uid:${currentUid()}`], hint: HINT }] });
      console.info(`interop: started the trust domain in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      agent = await served(td);
    } catch (err) {
      setupError = err;
    }
  }, 600_000);

  afterAll(async () => {
    await td?.close();
    tmp?.cleanup();
  }, 60_000);

  const runJava = async (args: string[], channel: ChannelVariant['channel'], opts: { uid?: number } = {}): Promise<JavaRun> => {
    const started = Date.now();
    const r = await run(
      'java',
      [
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        '-XX:-UsePerfData',
        '-Xmx256m',
        `-Djava.io.tmpdir=${jvmHome}`,
        `-Duser.home=${jvmHome}`,
        '-jar',
        jar,
        args[0]!,
        '--socket',
        td!.endpoint,
        '--channel',
        channel,
        ...args.slice(1),
      ],
      { env: { ...process.env, HOME: jvmHome }, cwd: jvmHome, uid: opts.uid, timeoutMs: 120_000 },
    );
    console.info(`interop: java-spiffe ${args[0]} (${channel})${opts.uid !== undefined ? ` as uid ${opts.uid}` : ''}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { ...r, out: jsonLine<JavaOutput>(r) };
  };

  /** A failure message with the program's output and the agent's and server's logs. */
  const explain = (r: RunResult | undefined): string =>
    `exit ${r?.code}\nstdout: ${r?.stdout}\nstderr: ${r?.stderr}${td?.diagnostics() ?? ''}${`${r?.stdout}${r?.stderr}`.includes(AUTHORITY_RESET) ? AUTHORITY_HINT : ''}`;

  describe.each(VARIANTS.map((v) => [v.title, v] as const))('%s', (_title, variant) => {
    /** The identity run, made once per variant; the first tests assert on different parts of it. */
    let identity: JavaRun | undefined;
    let identityError: unknown;

    beforeAll(async () => {
      if (setupError !== undefined) return;
      try {
        identity = await runJava(['identity', '--expect-id', EXPECTED_ID, '--audience', AUDIENCE], variant.channel);
      } catch (err) {
        identityError = err;
      }
    }, 180_000);

    const ready = (): RealTrustDomain => {
      if (setupError !== undefined) throw setupError;
      return td!;
    };

    /** Runs fn, recording its outcome for `rpc` when this variant goes into the table. */
    const check = (rpc: string, fn: () => Promise<void>): Promise<void> => (variant.recorded ? recorder.check([rpc], fn) : fn());

    /** The identity run, which must have succeeded. */
    const identityOut = (): JavaOutput => {
      ready();
      if (identityError !== undefined) throw identityError;
      expect(identity?.code, explain(identity)).toBe(0);
      const o = identity!.out;
      expect(o.ok, explain(identity)).toBe(true);
      expect(o.mode).toBe('identity');
      expect(o.channel).toBe(variant.channel);
      expect(o.java_spiffe_version).toBe(JAVA_SPIFFE_VERSION);
      return o;
    };

    it('X509Source: the SVID of our entry, a chain that verifies against the bundle it got, and its key', () =>
      check('FetchX509SVID', async () => {
        const o = identityOut();
        const svid = agent.x509.svids[0]!;
        expect(agent.x509.svids).toHaveLength(1);

        // DefaultX509Source picked our SVID, as served.
        expect(o.spiffe_id).toBe(EXPECTED_ID);
        expect(o.hint).toBe(HINT);
        expect(o.chain).toEqual(splitDer(svid.x509_svid).map(b64));
        expect(o.chain).toHaveLength(2); // leaf + intermediate; the root is in the bundle

        // java-spiffe's own checks.
        expect(o.chain_verified_by_x509_source).toBe(true);
        expect(o.chain_verified_by_x509_bundles).toBe(true);
        expect(o.spiffe_id_accepted).toBe(true);
        expect(o.other_spiffe_id_rejected).toBe(true);
        expect(o.private_key_matches_leaf).toBe(true);

        // The same chain, re-verified here against the bundle java-spiffe holds.
        const [leaf, intermediate] = o.chain!.map((c) => new X509Certificate(Buffer.from(c, 'base64')));
        const anchors = o.x509_source_bundle!.map((c) => new X509Certificate(Buffer.from(c, 'base64')));
        expect(leaf!.subjectAltName).toBe(`URI:${EXPECTED_ID}`);
        expect(leaf!.ca).toBe(false);
        expect(intermediate!.ca).toBe(true);
        expect(leaf!.checkIssued(intermediate!)).toBe(true);
        expect(leaf!.verify(intermediate!.publicKey)).toBe(true);
        const root = anchors.find((a) => intermediate!.checkIssued(a) && intermediate!.verify(a.publicKey));
        expect(root, 'no authority of the X.509 bundle java-spiffe got signed the intermediate').toBeDefined();
        expect(root!.verify(root!.publicKey)).toBe(true);
        const now = Date.now();
        for (const c of [leaf!, intermediate!, root!]) {
          expect(Date.parse(c.validFrom)).toBeLessThanOrEqual(now);
          expect(Date.parse(c.validTo)).toBeGreaterThan(now);
        }
        expect(o.leaf_not_after).toBe(Math.floor(Date.parse(leaf!.validTo) / 1000));
        expect(o.leaf_not_after! - now / 1000).toBeLessThanOrEqual(X509_SVID_TTL + 5);

        // The private key java-spiffe parsed is the leaf's (and the one the agent served).
        const spki = (k: Parameters<typeof createPublicKey>[0]): Buffer => createPublicKey(k).export({ type: 'spki', format: 'der' });
        const key = createPrivateKey({ key: Buffer.from(o.private_key_pkcs8!, 'base64'), format: 'der', type: 'pkcs8' });
        expect(o.private_key_algorithm).toBe(key.asymmetricKeyType === 'ec' ? 'EC' : 'RSA');
        expect(spki(key).equals(leaf!.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
        expect(spki(createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' })).equals(spki(key))).toBe(true);

        // FetchX509SVID's bundle, as java-spiffe keeps it (source and one-shot context).
        const servedBundle = sortedB64(splitDer(svid.bundle));
        expect(o.x509_source_bundle).toEqual(servedBundle);
        expect(o.x509_context_spiffe_ids).toEqual([EXPECTED_ID]);
        expect(o.x509_context_bundles).toEqual({ [TD]: servedBundle });
      }));

    it('X.509 bundle set: exactly our trust domain, with the authorities the agent serves', () =>
      check('FetchX509Bundles', async () => {
        const o = identityOut();
        expect(Object.keys(agent.x509Bundles.bundles)).toEqual([`spiffe://${TD}`]);
        const servedBundle = sortedB64(splitDer(agent.x509Bundles.bundles[`spiffe://${TD}`]!));
        expect(servedBundle.length).toBeGreaterThanOrEqual(1);
        expect(o.x509_bundles).toEqual({ [TD]: servedBundle });
        // The same authorities as came with the SVID.
        expect(o.x509_bundles![TD]).toEqual(o.x509_source_bundle);
      }));

    it('JWT bundle set: exactly our trust domain, with the keys the agent serves', () =>
      check('FetchJWTBundles', async () => {
        const o = identityOut();
        expect(Object.keys(agent.jwtBundles.bundles)).toEqual([`spiffe://${TD}`]);
        const servedKeys = jwksAuthorities(agent.jwtBundles.bundles[`spiffe://${TD}`]!);
        expect(Object.keys(servedKeys).length).toBeGreaterThanOrEqual(1);
        // One-shot FetchJWTBundles and DefaultJwtSource's watch agree with the agent.
        expect(o.jwt_bundles).toEqual({ [TD]: servedKeys });
        expect(o.jwt_source_bundle).toEqual(servedKeys);
      }));

    it('JWT-SVID: DefaultJwtSource fetches one for the audience, and it validates locally against the JWT bundle', () =>
      check('FetchJWTSVID', async () => {
        const o = identityOut();
        const jwt = o.jwt!;
        expect(jwt.spiffe_id).toBe(EXPECTED_ID);
        expect(jwt.audience).toEqual([AUDIENCE]);
        // The token's own claims, read here.
        const [header, payload] = jwt.token.split('.');
        const claims = decodeJwtPart(payload);
        expect(claims.sub).toBe(EXPECTED_ID);
        expect(claims.aud).toEqual(typeof claims.aud === 'string' ? AUDIENCE : [AUDIENCE]);
        expect(claims.exp).toBe(jwt.expiry);
        expect(Object.keys(o.jwt_bundles![TD]!)).toContain(decodeJwtPart(header).kid);
        // Fetched moments ago, for at most the JWT-SVID TTL.
        const now = Date.now() / 1000;
        expect(jwt.expiry).toBeGreaterThan(now);
        expect(jwt.expiry).toBeLessThanOrEqual(now + JWT_SVID_TTL);
        if (jwt.issued_at !== null) expect(jwt.expiry - jwt.issued_at).toBeLessThanOrEqual(JWT_SVID_TTL);

        // JwtSvid.parseAndValidate with the JWT bundle set, and with the JWT source as bundle source.
        expect(o.jwt_validated_locally).toBe(EXPECTED_ID);
        expect(o.jwt_validated_locally_audience).toEqual([AUDIENCE]);
        expect(o.jwt_validated_by_jwt_source).toBe(EXPECTED_ID);
        // Another audience: java-spiffe refuses the token itself.
        expect(o.jwt_local_wrong_audience).toEqual({
          exception: 'io.spiffe.exception.JwtSvidException',
          message: `expected audience in [${AUDIENCE}-other] (audience=[${AUDIENCE}])`,
          causes: [],
        });
      }));

    it('ValidateJWTSVID: accepted for its audience, INVALID_ARGUMENT for another', () =>
      check('ValidateJWTSVID', async () => {
        const o = identityOut();
        expect(o.jwt_validated_by_workload_api).toBe(EXPECTED_ID);
        const wrong = o.jwt_workload_api_wrong_audience!;
        expect(wrong.returned).toBeUndefined();
        // WorkloadApiClient.validateJwtSvid wraps the gRPC error in a JwtSvidException.
        expect(wrong.exception).toBe('io.spiffe.exception.JwtSvidException');
        expect(wrong.message).toBe('Error validating JWT SVID');
        expect(wrong.grpc_code).toBe('INVALID_ARGUMENT');
        expect(wrong.grpc_description).toBe('jwtsvid: token audience does not include any expected audience');
        expect(wrong.causes).toEqual([`io.grpc.StatusRuntimeException: INVALID_ARGUMENT: ${wrong.grpc_description}`]);
      }));

    it('no identity (uid 65534): every call is PERMISSION_DENIED as the library reports it', async (ctx) => {
      const rpc = 'PermissionDenied (no identity)';
      const uid = currentUid();
      if (uid !== 0) {
        const why = `not root (uid ${uid}): the jar cannot be run as uid ${NOBODY_UID}, which has no entry at the agent`;
        console.warn(`interop: java-spiffe: ${rpc} skipped: ${why}`);
        if (variant.recorded) recorder.record(rpc, 'skip');
        ctx.skip(why);
        return;
      }
      await check(rpc, async () => {
        ready();
        const r = await runJava(['denied', '--audience', AUDIENCE], variant.channel, { uid: NOBODY_UID });
        expect(r.code, explain(r)).toBe(0);
        const o = r.out;
        expect(o.ok, explain(r)).toBe(true);
        expect(o.user).toBe('nobody');
        const denied = (exception: string, message: string): Attempt => ({
          exception,
          message,
          causes: ['io.grpc.StatusRuntimeException: PERMISSION_DENIED: workloadapi: no identity issued'],
          grpc_code: 'PERMISSION_DENIED',
          grpc_description: 'workloadapi: no identity issued',
        });
        const why = explain(r);
        // DefaultWorkloadApiClient's one-shot calls: the library's exception, the status as its cause.
        expect(o.fetch_x509_context, why).toEqual(denied('io.spiffe.exception.X509ContextException', 'Error fetching X509Context'));
        expect(o.fetch_x509_bundles, why).toEqual(denied('io.spiffe.exception.X509BundleException', 'Error fetching X.509 bundles'));
        expect(o.fetch_jwt_svid, why).toEqual(denied('io.spiffe.exception.JwtSvidException', 'Error fetching JWT SVID'));
        expect(o.fetch_jwt_bundles, why).toEqual(denied('io.spiffe.exception.JwtBundleException', 'Error fetching JWT Bundles'));
        expect(o.validate_jwt_svid, why).toEqual(denied('io.spiffe.exception.JwtSvidException', 'Error validating JWT SVID'));
        // The sources retry a refused watch (only INVALID_ARGUMENT ends one), so they time out;
        // what they were refused with shows only in the errors they log.
        expect(o.x509_source, why).toMatchObject({
          exception: 'io.spiffe.exception.X509SourceException',
          message: 'Error creating X.509 source',
          causes: ['java.util.concurrent.TimeoutException: Timeout waiting for X.509 Context update'],
        });
        expect(o.x509_source_watch_errors!.length, why).toBeGreaterThanOrEqual(1);
        expect(new Set(o.x509_source_watch_errors), why).toEqual(new Set(['PERMISSION_DENIED']));
        expect(o.jwt_source, why).toMatchObject({
          exception: 'io.spiffe.exception.JwtSourceException',
          message: 'Error creating JWT source',
          causes: ['java.util.concurrent.TimeoutException: Timeout waiting for JWT bundles update'],
        });
        expect(o.jwt_source_watch_errors!.length, why).toBeGreaterThanOrEqual(1);
        expect(new Set(o.jwt_source_watch_errors), why).toEqual(new Set(['PERMISSION_DENIED']));
      });
    }, 120_000);

    it('raw grpc-java with java-spiffe’s stubs: INVALID_ARGUMENT without the security header', () =>
      check('InvalidArgument (no header)', async () => {
        const t = ready();
        const r = await runJava(['no-header', '--audience', AUDIENCE], variant.channel);
        expect(r.code, explain(r)).toBe(0);
        const o = r.out;
        expect(o.ok, explain(r)).toBe(true);
        // What grpc-java puts in :authority: the socket path by default (as java-spiffe's channel does).
        expect(o.authority).toBe(variant.channel === 'library' ? t.workloadSocket : 'localhost');
        const invalid: Attempt = {
          exception: 'io.grpc.StatusRuntimeException',
          message: 'INVALID_ARGUMENT: workloadapi: security header missing from request',
          causes: [],
          grpc_code: 'INVALID_ARGUMENT',
          grpc_description: 'workloadapi: security header missing from request',
        };
        const why = explain(r);
        expect(o.fetch_x509_svid_no_header, why).toEqual(invalid);
        expect(o.fetch_jwt_svid_no_header, why).toEqual(invalid);
        expect(o.fetch_x509_svid_header_false, why).toEqual(invalid);
        // Control: the same channel and stub with `workload.spiffe.io: true` is served.
        expect(o.fetch_x509_svid_with_header, why).toEqual({ returned: EXPECTED_ID });
      }), 120_000);
  });
});
