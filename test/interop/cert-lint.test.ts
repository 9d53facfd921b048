// Interop: every kind of certificate a real trust domain hands out, linted by
// two independent certificate linters, pkilint (Python) and zlint (Go).
//
// One `anchorage server run` (SoftHSM2 token, bundle endpoint with the
// https_spiffe profile) and one `anchorage agent run` (harness.ts) issue the
// certificates; this file collects one of each kind, runs both linters on
// each, and holds the findings against test/interop/lint/accepted.json:
//
//  - an error or fatal finding fails: it cannot be accepted. The one way past
//    it is for a linter check that is wrong for SPIFFE certificates (pkilint
//    rejects every spiffe:// URI): accepted.json's "superseded" list names the
//    finding and a stricter check of this file's own (CHECKS) that the value
//    must pass instead, or the finding fails as usual;
//  - a warning or notice fails unless accepted.json lists it for that linter
//    and certificate kind, with the reason it is accepted;
//  - a listed finding that no longer occurs fails too, so the list stays true
//    (delete the entry).
//
// The linters are installed once into the build cache (test/interop/.cache):
// pkilint into a venv from lint/requirements.txt, zlint built from the tiny Go
// module lint/go.mod. Each is reinstalled only when its pin files change.
// Without python3 >= 3.11 (with venv) or Go the suite is skipped with a warning,
// except in CI (CI=true), where it fails. Set ANCHORAGE_CERT_LINT_OUT to a
// directory to keep the collected certificates (PEM) for running the linters
// by hand. lint/README.md says how findings are judged and accepted.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { toPem } from '@anchorage/client/pem';
import { STATE_FILE, type AgentState } from '../../node-agent/state.js';
import { freePort } from '../helpers/process.js';
import { splitDer } from '../helpers/test-ca.js';
import {
  cacheDir,
  cachedBuild,
  choosePython,
  currentUid,
  describeWithToolchain,
  goEnv,
  INTEROP_DIR,
  interopRecorder,
  openDir,
  pythonEnv,
  run,
  startTrustDomain,
  versionAtLeast,
  waitForSvid,
  type RealTrustDomain,
} from './harness.js';

const LINT_DIR = join(INTEROP_DIR, 'lint');
const REQUIREMENTS = join(LINT_DIR, 'requirements.txt');
const GO_MOD = join(LINT_DIR, 'go.mod');
const GO_SUM = join(LINT_DIR, 'go.sum');
const ACCEPTED_FILE = join(LINT_DIR, 'accepted.json');
const ZLINT_PACKAGE = 'github.com/zmap/zlint/v3/cmd/zlint';
/** The oldest Python every pin in requirements.txt installs on (python-dateutil 4 needs 3.11). */
const PYTHON_MIN = '3.11';

const TD = 'lint.test';
const WORKLOAD_ID = `spiffe://${TD}/workload`;
const DNS_WORKLOAD_ID = `spiffe://${TD}/web`;
const DNS_NAMES = ['web.lint.test', '*.web.lint.test'];
const SERVER_ID = `spiffe://${TD}/anchorage/server`;

// --- what is linted -------------------------------------------------------------------

const KINDS = ['root CA', 'intermediate CA', 'X509-SVID', 'X509-SVID with DNS SANs', 'agent SVID', 'bundle endpoint'] as const;
type Kind = (typeof KINDS)[number];

/** The kind of the certificate that signs each kind (the root signs itself). */
const ISSUER: Record<Kind, Kind> = {
  'root CA': 'root CA',
  'intermediate CA': 'root CA',
  'X509-SVID': 'intermediate CA',
  'X509-SVID with DNS SANs': 'intermediate CA',
  'agent SVID': 'intermediate CA',
  'bundle endpoint': 'intermediate CA',
};

type Linter = 'pkilint' | 'zlint';
const LINTERS: readonly Linter[] = ['pkilint', 'zlint'];

/**
 * Severities, per linter: the ones that always fail, and the ones that fail
 * unless accepted. Lower ones (pkilint INFO/DEBUG, zlint pass/NA/NE) are not
 * findings here.
 */
const FAILING: Record<Linter, readonly string[]> = { pkilint: ['FATAL', 'ERROR'], zlint: ['fatal', 'error'] };
const TRACKED: Record<Linter, readonly string[]> = { pkilint: ['WARNING', 'NOTICE'], zlint: ['warn', 'info'] };

/**
 * The zlint lint sources that are run: the RFCs and zlint's community lints.
 * Left out are the CA/Browser Forum requirements (CABF_BR, CABF_EV,
 * CABF_CS_BR, CABF_SMIME_BR), the root store policies (Apple, Chrome,
 * Mozilla) and ETSI's rules for EU qualified certificates: they govern
 * publicly trusted certificates, and a SPIFFE trust domain is a private PKI
 * whose SVIDs are not such certificates (lint/README.md). For the same reason
 * pkilint runs its RFC 5280 linters, not lint_cabf_serverauth_cert.
 */
const ZLINT_SOURCES = ['RFC5280', 'RFC3279', 'RFC5480', 'RFC5891', 'RFC6962', 'RFC8813', 'Community'];
/** Fewer lints than this applying to a certificate means zlint was not really run on it. */
const ZLINT_MIN_APPLIED = 40;

interface Finding {
  linter: Linter;
  kind: Kind;
  code: string;
  severity: string;
  /** The linter's message (pkilint) or details (zlint), if any. */
  message: string;
  /** Where: pkilint's command, validator and node, or "zlint". */
  where: string;
}

/** A warning or notice that is accepted for one kind of certificate. */
interface Accepted {
  linter: Linter;
  kind: Kind;
  code: string;
  severity: string;
  reason: string;
}

/**
 * A linter check that is wrong for SPIFFE certificates and that this suite
 * replaces with its own, stricter one (as pkilint's own TLS profile replaces
 * some of its RFC 5280 checks): a finding with this code is not a failure
 * when `check` passes on the value it names, which must also be in the
 * certificate. When the check fails, the finding fails as usual.
 */
interface Superseded {
  linter: Linter;
  kinds: Kind[];
  code: string;
  severity: string;
  check: CheckName;
  reason: string;
}

type CheckName = keyof typeof CHECKS;

const SPIFFE_TD = /^[a-z0-9._-]+$/;
const SPIFFE_SEGMENT = /^[A-Za-z0-9._-]+$/;
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** The SPIFFE ID grammar (SPIFFE-ID.md §2): why `id` is not a SPIFFE ID, or undefined if it is one. */
function spiffeIdProblem(id: string): string | undefined {
  if (!id.startsWith('spiffe://')) return 'not spiffe://';
  if (Buffer.byteLength(id) > 2048) return 'longer than 2048 bytes';
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const td = slash < 0 ? rest : rest.slice(0, slash);
  if (td === '' || td.length > 255 || !SPIFFE_TD.test(td)) return `bad trust domain "${td}"`;
  if (slash < 0) return undefined;
  for (const seg of rest.slice(slash + 1).split('/')) {
    if (seg === '' || seg === '.' || seg === '..' || !SPIFFE_SEGMENT.test(seg)) return `bad path segment "${seg}"`;
  }
  return undefined;
}

/** A wildcard dNSName (RFC 6125 §6.4.3, RFC 9525 §6.3): `*.` then a preferred-syntax name of two or more labels. */
function wildcardDnsNameProblem(name: string): string | undefined {
  if (!name.startsWith('*.')) return 'not a wildcard name';
  const base = name.slice(2);
  const labels = base.split('.');
  if (base.length > 253 - 2) return 'too long';
  if (labels.length < 2) return 'a wildcard needs at least two labels after "*."';
  const bad = labels.find((l) => !LDH_LABEL.test(l));
  if (bad !== undefined) return `bad label "${bad}"`;
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return 'numeric top-level label';
  return undefined;
}

function sans(c: X509Certificate, type: 'URI' | 'DNS'): string[] {
  return (c.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith(`${type}:`))
    .map((s) => s.slice(type.length + 1));
}

/** The replacement checks superseded findings are held to: why the finding stands, or undefined. */
const CHECKS = {
  /** pkilint only accepts URIs of nine schemes (http, https, ftp, …); a SPIFFE ID must meet the SPIFFE grammar instead. */
  'spiffe-id': (f: Finding, cert: X509Certificate): string | undefined => {
    const value = /^Invalid URI syntax: "(.*)"$/.exec(f.message)?.[1];
    if (value === undefined) return 'the message does not name a URI';
    if (!sans(cert, 'URI').includes(value)) return `${value} is not a URI SAN of the certificate`;
    const problem = spiffeIdProblem(value);
    return problem && `${value} is not a SPIFFE ID: ${problem}`;
  },
  /** RFC 5280's preferred name syntax has no wildcard; the wildcard must be the whole leftmost label of an otherwise valid name. */
  'wildcard-dns-name': (f: Finding, cert: X509Certificate): string | undefined => {
    const value = /^Invalid domain name syntax: "(.*)"$/.exec(f.message)?.[1];
    if (value === undefined) return 'the message does not name a domain name';
    if (!sans(cert, 'DNS').includes(value)) return `${value} is not a DNS SAN of the certificate`;
    const problem = wildcardDnsNameProblem(value);
    return problem && `${value} is not a valid wildcard name: ${problem}`;
  },
} satisfies Record<string, (f: Finding, cert: X509Certificate) => string | undefined>;

interface AcceptedFile {
  accepted: Accepted[];
  superseded: Superseded[];
}

/** Reads accepted.json, refusing anything that could hide a problem (an accepted error, a duplicate, no reason). */
function loadAccepted(): AcceptedFile {
  const doc = JSON.parse(readFileSync(ACCEPTED_FILE, 'utf8')) as { accepted?: unknown; superseded?: unknown };
  if (!Array.isArray(doc.accepted)) throw new Error('cert-lint: accepted.json has no "accepted" array');
  if (!Array.isArray(doc.superseded)) throw new Error('cert-lint: accepted.json has no "superseded" array');
  const seen = new Set<string>();
  const common = (a: Partial<Accepted & Superseded>, where: string, keys: string[]): void => {
    if (Object.keys(a).sort().join(',') !== [...keys].sort().join(',')) throw new Error(`${where}: must have exactly ${keys.join(', ')}`);
    if (!LINTERS.includes(a.linter as Linter)) throw new Error(`${where}: linter must be one of ${LINTERS.join(', ')}`);
    if (typeof a.code !== 'string' || a.code === '') throw new Error(`${where}: code must be a non-empty string`);
    if (typeof a.reason !== 'string' || a.reason.trim().length < 20) throw new Error(`${where}: reason must say why`);
    for (const kind of a.kinds ?? [a.kind]) {
      if (!KINDS.includes(kind as Kind)) throw new Error(`${where}: kind must be one of ${KINDS.join(', ')}`);
      const key = `${a.linter}|${kind}|${a.code}|${a.severity}`;
      if (seen.has(key)) throw new Error(`${where}: ${a.code} for ${kind} is listed twice`);
      seen.add(key);
    }
  };
  const accepted = doc.accepted.map((raw: unknown, i) => {
    const a = raw as Partial<Accepted>;
    const where = `accepted.json: accepted[${i}] (${JSON.stringify(raw)})`;
    common(a, where, ['linter', 'kind', 'code', 'severity', 'reason']);
    if (!TRACKED[a.linter!].includes(a.severity!)) throw new Error(`${where}: only ${TRACKED[a.linter!].join(' or ')} findings of ${a.linter} can be accepted`);
    return a as Accepted;
  });
  const superseded = doc.superseded.map((raw: unknown, i) => {
    const s = raw as Partial<Superseded>;
    const where = `accepted.json: superseded[${i}] (${JSON.stringify(raw)})`;
    common(s, where, ['linter', 'kinds', 'code', 'severity', 'check', 'reason']);
    if (!Array.isArray(s.kinds) || s.kinds.length === 0) throw new Error(`${where}: kinds must be a non-empty list`);
    if (!FAILING[s.linter!].includes(s.severity!)) throw new Error(`${where}: only ${FAILING[s.linter!].join(' or ')} findings are superseded (accept warnings instead)`);
    if (!Object.hasOwn(CHECKS, s.check!)) throw new Error(`${where}: check must be one of ${Object.keys(CHECKS).join(', ')}`);
    return s as Superseded;
  });
  return { accepted, superseded };
}

type FindingKey = Pick<Finding, 'linter' | 'kind' | 'code' | 'severity'>;
const sameFinding = (a: FindingKey, b: FindingKey): boolean => a.linter === b.linter && a.kind === b.kind && a.code === b.code && a.severity === b.severity;

/** A finding as an accepted.json entry, for pasting once its reason is written. */
function asEntry(f: Finding): string {
  return JSON.stringify({ linter: f.linter, kind: f.kind, code: f.code, severity: f.severity, reason: 'TODO: why this is acceptable' });
}

function describeFinding(f: Finding): string {
  return `${f.severity} ${f.code} (${f.where}${f.message ? `: ${f.message}` : ''})`;
}

// --- the toolchains ---------------------------------------------------------------------

/** The `go` line and the zlint version of lint/go.mod. */
function goModPins(): { go: string; zlint: string } {
  const text = readFileSync(GO_MOD, 'utf8');
  const go = /^go\s+(\S+)\s*$/m.exec(text)?.[1];
  const zlint = /github\.com\/zmap\/zlint\/v3 (v\S+)/.exec(text)?.[1];
  if (!go || !zlint) throw new Error('cert-lint: test/interop/lint/go.mod must have a go line and require github.com/zmap/zlint/v3');
  return { go, zlint };
}

/** The exact pkilint version of lint/requirements.txt. */
function pkilintPin(): string {
  const v = /^pkilint==(\S+)\s*$/m.exec(readFileSync(REQUIREMENTS, 'utf8'))?.[1];
  if (!v) throw new Error('cert-lint: test/interop/lint/requirements.txt must pin pkilint exactly (pkilint==X.Y.Z)');
  return v;
}

/** The Python the pkilint venv is made with. */
const python = choosePython({ min: PYTHON_MIN, purpose: 'pkilint (lint/requirements.txt)' });

/** Why the suite cannot run here, or undefined when it can. */
function toolchainUnusable(): string | undefined {
  if (python.unusable !== undefined) return python.unusable;
  const go = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8', env: goEnv(), timeout: 30_000 });
  if (go.error) return 'Go toolchain not found (zlint is built with it)';
  if (go.status !== 0) return `"go env GOVERSION" failed: ${go.stderr.trim()}`;
  const need = goModPins().go;
  if (!versionAtLeast(go.stdout.trim(), need)) return `${go.stdout.trim()} is older than go${need}, which zlint ${goModPins().zlint} needs`;
  return undefined;
}

const unusable = toolchainUnusable();

/** Fails with everything a command printed unless it exited 0. */
async function mustRun(what: string, cmd: string, args: string[], opts: Parameters<typeof run>[2]): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`cert-lint: ${what} failed (exit ${r.code}, signal ${r.signal}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

interface Tools {
  pkilintBin: string;
  zlint: string;
  versions: string;
}

async function installTools(): Promise<Tools> {
  // pkilint: a venv whose stamp is the requirements file and the interpreter.
  const py = python.python;
  if (py === undefined) throw new Error(`cert-lint: ${python.unusable}`);
  const venv = cacheDir('pkilint');
  const pk = await cachedBuild(venv, [readFileSync(REQUIREMENTS), `python ${py.version} ${py.executable}`], async () => {
    await mustRun('python3 -m venv', py.executable, ['-m', 'venv', venv], { env: pythonEnv(), timeoutMs: 120_000 });
    await mustRun('pip install -r test/interop/lint/requirements.txt', join(venv, 'bin', 'pip'), ['install', '-q', '-r', REQUIREMENTS], { env: pythonEnv(), timeoutMs: 480_000 });
  });
  const pkVersion = await mustRun('reading the pkilint version', join(venv, 'bin', 'python'), ['-c', 'import importlib.metadata as m; print(m.version("pkilint"))'], {
    env: pythonEnv(),
    timeoutMs: 60_000,
  });
  if (pkVersion.trim() !== pkilintPin()) throw new Error(`cert-lint: the venv has pkilint ${pkVersion.trim()}, requirements.txt pins ${pkilintPin()}`);

  // zlint: built from lint/go.mod (a `tool` line and go.sum pin it and every dependency).
  const zdir = cacheDir('zlint');
  const pins = goModPins();
  const goVersion = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8', env: goEnv() }).stdout.trim();
  const zlint = join(zdir, 'zlint');
  const zl = await cachedBuild(zdir, [readFileSync(GO_MOD), readFileSync(GO_SUM), goVersion], async () => {
    await mustRun('go build zlint', 'go', ['build', '-buildvcs=false', '-trimpath', '-ldflags', `-X main.version=${pins.zlint}`, '-o', zlint, ZLINT_PACKAGE], {
      cwd: LINT_DIR,
      env: goEnv(),
      timeoutMs: 480_000,
    });
  });
  const zVersion = (await mustRun('zlint -version', zlint, ['-version'], { timeoutMs: 30_000 })).trim();
  if (zVersion !== `ZLint version ${pins.zlint}`) throw new Error(`cert-lint: the cached zlint says "${zVersion}", go.mod pins ${pins.zlint}`);

  const how = (built: boolean): string => (built ? 'installed' : 'cached');
  return { pkilintBin: join(venv, 'bin'), zlint, versions: `pkilint ${pkVersion.trim()} (${how(pk)}), zlint ${pins.zlint} (${how(zl)}), ${goVersion}, python ${py.version}` };
}

// --- the linters ------------------------------------------------------------------------

interface PkilintReport {
  results: { node_path: string; validator: string; finding_descriptions: { severity: string; code: string; message: string | null }[] }[];
}

/** Runs one pkilint command; its exit status is its finding count, so only its JSON says whether it worked. */
async function pkilint(tools: Tools, kind: Kind, command: string, files: string[]): Promise<Finding[]> {
  const r = await run(join(tools.pkilintBin, command), ['lint', '-s', 'ALL', '-f', 'JSON', '--document-format', 'PEM', ...files], { env: pythonEnv(), timeoutMs: 120_000 });
  let report: PkilintReport;
  try {
    report = JSON.parse(r.stdout) as PkilintReport;
    if (!Array.isArray(report.results)) throw new Error('no results');
  } catch {
    throw new Error(`cert-lint: ${command} did not report (exit ${r.code}, signal ${r.signal}):\n${r.stderr}${r.stdout}`);
  }
  const out: Finding[] = [];
  for (const res of report.results) {
    for (const f of res.finding_descriptions) {
      out.push({ linter: 'pkilint', kind, code: f.code, severity: f.severity, message: f.message ?? '', where: `${command}: ${res.validator} @ ${res.node_path}` });
    }
  }
  return out;
}

type ZlintReport = Record<string, { result: string; details?: string }>;

async function zlint(tools: Tools, kind: Kind, file: string): Promise<Finding[]> {
  const r = await run(tools.zlint, ['-includeSources', ZLINT_SOURCES.join(','), file], { timeoutMs: 60_000 });
  let report: ZlintReport;
  try {
    if (r.code !== 0) throw new Error('failed');
    report = JSON.parse(r.stdout) as ZlintReport;
  } catch {
    throw new Error(`cert-lint: zlint did not report (exit ${r.code}, signal ${r.signal}):\n${r.stderr}${r.stdout}`);
  }
  const applied = Object.values(report).filter((v) => !['NA', 'NE'].includes(v.result)).length;
  if (applied < ZLINT_MIN_APPLIED) throw new Error(`cert-lint: only ${applied} zlint lints applied to the ${kind} certificate:\n${r.stdout}`);
  return Object.entries(report)
    .filter(([, v]) => !['pass', 'NA', 'NE'].includes(v.result))
    .map(([name, v]) => ({ linter: 'zlint' as const, kind, code: name, severity: v.result, message: v.details ?? '', where: 'zlint' }));
}

// --- the certificates -------------------------------------------------------------------

/** The leaf certificate the bundle endpoint presents in its TLS handshake. */
async function bundleEndpointCert(port: number): Promise<Buffer> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await new Promise<Buffer>((resolve, reject) => {
        // Not verified here: only the certificate is wanted (and its SPIFFE ID is checked below).
        const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, timeout: 5_000 }, () => {
          const raw = socket.getPeerCertificate().raw;
          socket.end();
          if (raw) resolve(raw);
          else reject(new Error('no peer certificate'));
        });
        socket.once('error', reject);
        socket.once('timeout', () => socket.destroy(new Error('timed out')));
      });
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`cert-lint: could not get the bundle endpoint's certificate on 127.0.0.1:${port}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** One certificate of each kind, from the trust domain as its clients see it. */
async function collect(td: RealTrustDomain, dir: string, endpointPort: number): Promise<Record<Kind, X509Certificate>> {
  let svids = await waitForSvid(td.workloadSocket, DNS_WORKLOAD_ID, 30_000);
  if (!svids.svids.some((s) => s.spiffe_id === WORKLOAD_ID)) svids = await waitForSvid(td.workloadSocket, WORKLOAD_ID, 30_000);
  const chainOf = (id: string): Uint8Array[] => {
    const s = svids.svids.find((x) => x.spiffe_id === id);
    if (!s) throw new Error(`cert-lint: the Workload API did not serve ${id}`);
    return splitDer(s.x509_svid);
  };
  const plain = chainOf(WORKLOAD_ID);
  const withDns = chainOf(DNS_WORKLOAD_ID);
  const bundle = splitDer(svids.svids[0]!.bundle);
  const state = JSON.parse(readFileSync(join(dir, 'agent', STATE_FILE), 'utf8')) as AgentState;
  if (!state.agent) throw new Error('cert-lint: the agent state file has no agent SVID');

  const certs: Record<Kind, X509Certificate> = {
    'root CA': new X509Certificate(bundle[0]!),
    'intermediate CA': new X509Certificate(plain[1]!),
    'X509-SVID': new X509Certificate(plain[0]!),
    'X509-SVID with DNS SANs': new X509Certificate(withDns[0]!),
    'agent SVID': new X509Certificate(Buffer.from(state.agent.chain[0]!, 'base64')),
    'bundle endpoint': new X509Certificate(await bundleEndpointCert(endpointPort)),
  };

  // Each certificate is the kind it is said to be, issued by the one it is said to be.
  const root = certs['root CA'];
  expect(bundle).toHaveLength(1);
  expect(root.ca && root.checkIssued(root) && root.verify(root.publicKey), 'root CA is a self-signed CA').toBe(true);
  expect(plain).toHaveLength(2);
  expect(certs['intermediate CA'].ca).toBe(true);
  expect(sans(certs['X509-SVID'], 'URI')).toEqual([WORKLOAD_ID]);
  expect(sans(certs['X509-SVID with DNS SANs'], 'URI')).toEqual([DNS_WORKLOAD_ID]);
  expect(sans(certs['X509-SVID'], 'DNS')).toEqual([]);
  expect(sans(certs['X509-SVID with DNS SANs'], 'DNS')).toEqual(DNS_NAMES);
  expect(sans(certs['agent SVID'], 'URI')).toEqual([td.agentId]);
  expect(sans(certs['bundle endpoint'], 'URI')).toEqual([SERVER_ID]);
  for (const kind of KINDS) {
    const issuer = certs[ISSUER[kind]];
    expect(certs[kind].checkIssued(issuer) && certs[kind].verify(issuer.publicKey), `${kind} is signed by the ${ISSUER[kind]}`).toBe(true);
  }
  return certs;
}

function fileName(kind: Kind): string {
  return `${kind.replace(/[^A-Za-z0-9]+/g, '-').toLowerCase()}.pem`;
}

// --- the suite --------------------------------------------------------------------------

describeWithToolchain('certificate lint (pkilint, zlint)', unusable, () => {
  const recorders: Record<Linter, ReturnType<typeof interopRecorder>> = { pkilint: interopRecorder('pkilint'), zlint: interopRecorder('zlint') };
  let work: { dir: string; cleanup(): void } | undefined;
  let td: RealTrustDomain | undefined;
  let tools: Tools | undefined;
  let certs: Record<Kind, X509Certificate> | undefined;
  /** Certificate files (PEM) by kind. */
  const files = new Map<Kind, string>();
  /** Why setup failed; every test reports it. */
  let setupError: unknown;
  let list: AcceptedFile = { accepted: [], superseded: [] };
  let listError: unknown;
  /** For the staleness check: the tracked findings of each linter run that completed, by `linter|kind`. */
  const tracked = new Map<string, Finding[]>();
  /** ... and each superseded finding, by `linter|kind`. */
  const superseded = new Map<string, Finding[]>();

  beforeAll(async () => {
    try {
      list = loadAccepted();
    } catch (err) {
      listError = err;
    }
    try {
      const started = Date.now();
      tools = await installTools();
      console.info(`cert-lint: ${tools.versions}; ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

      work = openDir('anchorage-cert-lint-');
      const endpointPort = await freePort();
      td = await startTrustDomain(work.dir, {
        trustDomain: TD,
        entries: [
          { spiffeId: WORKLOAD_ID, selectors: [`unix:uid:${currentUid()}`] },
          { spiffeId: DNS_WORKLOAD_ID, selectors: [`unix:uid:${currentUid()}`], dnsNames: DNS_NAMES },
        ],
        serverYaml: `federation:\n  bundle_endpoint:\n    address: 127.0.0.1:${endpointPort}\n    profile: https_spiffe\n`,
      });
      certs = await collect(td, work.dir, endpointPort);
      const keep = process.env.ANCHORAGE_CERT_LINT_OUT;
      const outDir = keep ? (mkdirSync(keep, { recursive: true }), keep) : work.dir;
      for (const kind of KINDS) {
        const file = join(outDir, fileName(kind));
        writeFileSync(file, toPem('CERTIFICATE', certs[kind].raw));
        files.set(kind, file);
      }
      if (keep) console.info(`cert-lint: certificates kept in ${keep}`);
    } catch (err) {
      setupError = err;
    }
  }, 900_000);

  afterAll(async () => {
    await td?.close();
    work?.cleanup();
  }, 60_000);

  const ready = (): Tools => {
    if (setupError !== undefined) throw setupError;
    if (listError !== undefined) throw listError;
    return tools!;
  };

  /**
   * Fails on every error or fatal finding that no superseding check clears,
   * and on every warning or notice that accepted.json does not accept.
   */
  function judge(linter: Linter, kind: Kind, findings: Finding[]): void {
    const key = `${linter}|${kind}`;
    const lines: string[] = [];
    tracked.set(key, []);
    superseded.set(key, []);
    for (const f of findings) {
      if (FAILING[linter].includes(f.severity)) {
        const rule = list.superseded.find((s) => s.kinds.includes(kind) && sameFinding({ ...s, kind }, f));
        const stands = rule && CHECKS[rule.check](f, certs![kind]);
        if (rule && stands === undefined) {
          superseded.get(key)!.push(f);
          console.info(`cert-lint: ${linter} on the ${kind}: ${describeFinding(f)} superseded by the ${rule.check} check`);
        } else if (rule) {
          lines.push(`  ${describeFinding(f)} — fails the ${rule.check} check that supersedes it: ${stands}`);
        } else {
          lines.push(`  ${describeFinding(f)} — an error: fix the certificate (errors cannot be accepted)`);
        }
      } else if (TRACKED[linter].includes(f.severity)) {
        tracked.get(key)!.push(f);
        if (!list.accepted.some((a) => sameFinding(a, f))) {
          lines.push(`  ${describeFinding(f)} — not in accepted.json; fix it, or accept it with:\n    ${asEntry(f)}`);
        }
      }
    }
    if (lines.length > 0) throw new Error(`cert-lint: ${linter} on the ${kind} certificate (${files.get(kind)}):\n${lines.join('\n')}`);
  }

  for (const kind of KINDS) {
    it(`pkilint: ${kind}`, async () => {
      const t = ready();
      await recorders.pkilint.check([kind], async () => {
        const file = files.get(kind)!;
        const findings = [
          ...(await pkilint(t, kind, 'lint_pkix_cert', [file])),
          // Issuer and subject together: name chaining, key identifiers, the signature.
          ...(await pkilint(t, kind, 'lint_pkix_signer_signee_cert_chain', [files.get(ISSUER[kind])!, file])),
        ];
        judge('pkilint', kind, findings);
      });
    });

    it(`zlint: ${kind}`, async () => {
      const t = ready();
      await recorders.zlint.check([kind], async () => judge('zlint', kind, await zlint(t, kind, files.get(kind)!)));
    });
  }

  it('accepted.json lists only findings that still occur', () => {
    ready();
    const missing = LINTERS.flatMap((l) => KINDS.filter((k) => !tracked.has(`${l}|${k}`)).map((k) => `${l} on the ${k}`));
    if (missing.length > 0) throw new Error(`cert-lint: cannot tell whether accepted.json is current: ${missing.join(', ')} did not complete`);
    const stale = [
      ...list.accepted.filter((a) => !tracked.get(`${a.linter}|${a.kind}`)!.some((f) => sameFinding(a, f))).map((a) => `accepted: ${a.linter} ${a.kind} ${a.severity} ${a.code}`),
      ...list.superseded.flatMap((s) =>
        s.kinds.filter((kind) => !superseded.get(`${s.linter}|${kind}`)!.some((f) => sameFinding({ ...s, kind }, f))).map((kind) => `superseded: ${s.linter} ${kind} ${s.severity} ${s.code}`),
      ),
    ];
    expect(stale, 'findings accepted.json lists that no longer occur: remove them').toEqual([]);
  });
});
