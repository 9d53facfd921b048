// Issue 10, item 8 and the fault suite's "SIGKILL at random points of server
// start and of rotation": `anchorage server run` on one SoftHSM2 token and
// one data dir, killed with SIGKILL at a random moment, again and again. The
// CA lifetime is a few seconds, so nearly every start generates keys (the
// previous intermediate and JWT key have expired) and a running server
// rotates every few seconds: kills land inside C_GenerateKeyPair, between
// the journal writes and the token writes, and in key deletion.
//
// After every kill the next start must succeed (on today's main one kill in
// ~26 leaves a half-made key and every later start fails with `label … is
// already used`). At the end: every label on the token is one private and
// one public key, no unlabelled key objects, and the CA journal and the
// token name the same keys with the same public keys.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteDataStore } from '../../ca/datastore/sqlite/index.js';
import { acquirePkcs11Module } from '../../ca/keymanager/pkcs11/index.js';
import { keyTypeFromEcParams, spkiFromEcPoint } from '../../ca/keymanager/ec.js';
import { assertBuilt, BIN, cliAsync, startServerProcess, tempDir } from '../helpers/process.js';
import { useSoftHsmToken, writePkcs11ServerConfig } from '../helpers/softhsm.js';

const P = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');

const TD = 'kill.test';
/** Bounds: iterations and wall time (whichever ends first). */
const ITERATIONS = 24;
const BUDGET_MS = 75_000;

// This process lists the token's objects at the end, so it needs the conf
// before anything loads the module.
const token = useSoftHsmToken('anchorage', '4321');
let tmp: { dir: string; cleanup: () => void };
let config: string;
let socket: string;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

beforeAll(() => {
  assertBuilt();
  tmp = tempDir('anchorage-kill-');
  env = { ...token.env };
  socket = join(tmp.dir, 'admin.sock');
  config = writePkcs11ServerConfig(token, { dir: tmp.dir, trustDomain: TD, socket, extra: `ca:\n  ttl: 6s\nx509_svid_ttl: 2s\njwt_svid_ttl: 1s\nagent_svid_ttl: 2s\n` });
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  tmp?.cleanup();
  token.cleanup();
});

/** A small seeded PRNG (mulberry32): a failing run can be replayed with its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** When a kill's delay starts counting: at spawn, once the token is open (key generation follows), or once ready. */
type Mark = 'spawn' | 'token opened' | 'ready';

/** Starts the server, waits for `mark` and then `delayMs`, then SIGKILLs it. Fails if it exited on its own. */
async function startAndKill(delayMs: number, mark: Mark): Promise<{ log: string; reachedReady: boolean }> {
  const child = spawn(process.execPath, [BIN, 'server', 'run', '-c', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const ready = () => log.includes('"server: ready"');
  const seen = () => mark === 'spawn' || log.includes(`"${mark === 'ready' ? 'server: ready' : 'pkcs11: token opened'}"`);
  const deadline = Date.now() + 30_000;
  while (!seen() && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const until = Date.now() + delayMs;
  while (Date.now() < until && child.exitCode === null) await new Promise((r) => setTimeout(r, 5));
  if (child.exitCode !== null) throw new Error(`the server exited on its own (${child.exitCode}) before the kill:\n${log}`);
  if (!seen()) throw new Error(`the server did not log "${mark}" in 30 s:\n${log}`);
  child.kill('SIGKILL');
  await exited;
  return { log, reachedReady: ready() };
}

/**
 * SoftHSM2's file store rewrites token.object (label, PIN hashes, flags) in
 * place on a login, truncating it first; a SIGKILL in between leaves it empty
 * and the whole token unrecognized (CKR_TOKEN_NOT_RECOGNIZED; seen about once
 * in 100 kills of a tight login-and-generate loop). No server can work around
 * that (a real HSM, or SoftHSM2 built with its transactional db backend, does
 * not have it), so the test keeps a copy and puts it back when a kill
 * truncated it, and says how often: the kills test Anchorage's atomicity,
 * not SoftHSM2's.
 */
function guardTokenFile(): () => boolean {
  const dir = readdirSync(token.tokensDir).find((d) => statSync(join(token.tokensDir, d)).isDirectory())!;
  const file = join(token.tokensDir, dir, 'token.object');
  const copy = readFileSync(file);
  return () => {
    if (statSync(file).size >= copy.length) return false;
    writeFileSync(file, copy);
    return true;
  };
}

interface TokenKey {
  classes: string[];
  spki?: Buffer;
}

/** Every private and public key object on the token, grouped by label. */
function listToken(): { byLabel: Map<string, TokenKey>; unlabelled: string[] } {
  const mod = acquirePkcs11Module(token.module);
  const lib = mod.lib;
  const slot = lib.C_GetSlotList(true).find((x) => lib.C_GetTokenInfo(x).label.trim() === token.label)!;
  const s = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION);
  try {
    try {
      lib.C_Login(s, P.CKU_USER, token.pin);
    } catch {
      // already logged in through another session of this process
    }
    const byLabel = new Map<string, TokenKey>();
    const unlabelled: string[] = [];
    for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY]) {
      lib.C_FindObjectsInit(s, [{ type: P.CKA_CLASS, value: cls }]);
      const hs = lib.C_FindObjects(s, 10_000);
      lib.C_FindObjectsFinal(s);
      for (const h of hs) {
        const [label] = lib.C_GetAttributeValue(s, h, [{ type: P.CKA_LABEL }]);
        const name = label!.value.toString('utf8');
        if (name === '') {
          const attrs = [P.CKA_KEY_TYPE, P.CKA_EC_PARAMS, P.CKA_EC_POINT, P.CKA_ID].map((t) => {
            try {
              return lib.C_GetAttributeValue(s, h, [{ type: t }])[0]!.value.toString('hex');
            } catch (err) {
              return (err as Error).message;
            }
          });
          unlabelled.push(`${cls === P.CKO_PRIVATE_KEY ? 'private' : 'public'} key_type=${attrs[0]} ec_params=${attrs[1]} ec_point=${attrs[2]} id=${attrs[3]}`);
          continue;
        }
        const k = byLabel.get(name) ?? { classes: [] };
        k.classes.push(cls === P.CKO_PRIVATE_KEY ? 'private' : 'public');
        if (cls === P.CKO_PUBLIC_KEY) {
          const [params, point] = lib.C_GetAttributeValue(s, h, [{ type: P.CKA_EC_PARAMS }, { type: P.CKA_EC_POINT }]);
          const type = keyTypeFromEcParams(params!.value);
          if (type && point!.value.length > 0) k.spki = spkiFromEcPoint(type, point!.value);
        }
        byLabel.set(name, k);
      }
    }
    for (const k of byLabel.values()) k.classes.sort();
    return { byLabel, unlabelled };
  } finally {
    lib.C_CloseSession(s);
    mod.release();
  }
}

describe('SIGKILL at random points of server start and rotation (issue 10, item 8)', () => {
  it(`${ITERATIONS} kills; every later start succeeds; the token and the CA journal agree`, { timeout: 150_000 }, async () => {
    const seed = Number(process.env.ANCHORAGE_FAULT_SEED ?? Date.now() % 1_000_000);
    const random = rng(seed);
    const started = Date.now();
    let kills = 0;
    let duringStart = 0;
    let softhsmTruncations = 0;
    for (let i = 0; i < ITERATIONS && Date.now() - started < BUDGET_MS; i++) {
      // A third of the kills land anywhere in the start, a third in the
      // moments after the token opened (where the start generates keys: the
      // window of item 8), a third while the running server rotates.
      const pick = random();
      const mark: Mark = pick < 1 / 3 ? 'spawn' : pick < 2 / 3 ? 'token opened' : 'ready';
      const delay = Math.floor(random() * (mark === 'spawn' ? 1500 : mark === 'token opened' ? 150 : 4000));
      const restoreTokenFile = guardTokenFile();
      const r = await startAndKill(delay, mark).catch((err: Error) => {
        throw new Error(`seed ${seed}, iteration ${i} (${delay} ms after ${mark}): ${err.message}`);
      });
      kills++;
      if (!r.reachedReady) duringStart++;
      if (restoreTokenFile()) softhsmTruncations++;
    }
    expect(kills).toBeGreaterThanOrEqual(10);

    // A normal start after the last kill: ready, and it mints.
    const server = await startServerProcess(config, socket, env);
    try {
      const out = join(tmp.dir, 'svid');
      const mint = await cliAsync(['x509', 'mint', '--spiffe-id', `spiffe://${TD}/web`, '--ttl', '1s', '--out-dir', out, '--socket', socket], env);
      expect(mint.code, mint.stderr).toBe(0);
    } finally {
      // SIGTERM waits for a rotation step in flight, so the journal is settled.
      await server.kill('SIGTERM');
    }

    const { byLabel, unlabelled } = listToken();
    const ds = SqliteDataStore.open(join(tmp.dir, 'data', 'datastore.sqlite3'));
    const journal = await ds.listJournal();
    await ds.close();
    const context = `seed ${seed}, ${kills} kills (${duringStart} before ready, ${softhsmTruncations} truncated token.object restored); token: ${JSON.stringify([...byLabel].map(([l, k]) => [l, k.classes]))}; journal: ${JSON.stringify(journal.map((r) => [r.id, r.status, r.keyId]))}`;

    expect(unlabelled, context).toEqual([]);
    for (const [label, k] of byLabel) expect(k.classes, `${label}: ${context}`).toEqual(['private', 'public']);
    // every key on the token is named by the journal (but the audit log's checkpoint key, which
    // the log finds by its label), and every settled row's key is on the token with its public key
    expect(journal.filter((r) => r.status === 'preparing'), context).toEqual([]);
    const auditKey = `anchorage-audit-${TD}`;
    expect([...byLabel.keys()].filter((l) => l !== auditKey).sort(), context).toEqual(journal.map((r) => r.keyId).sort());
    expect(byLabel.has(auditKey), context).toBe(true);
    for (const row of journal) {
      const k = byLabel.get(row.keyId)!;
      expect(Buffer.from(row.publicKeySpki!).equals(k.spki!), `${row.id}: ${context}`).toBe(true);
    }
    expect(journal.filter((r) => r.kind === 'x509' && r.status === 'active')).toHaveLength(1);
    expect(journal.filter((r) => r.kind === 'jwt' && r.status === 'active')).toHaveLength(1);
    expect(journal.filter((r) => r.kind === 'root')).toHaveLength(1);
  });
});
