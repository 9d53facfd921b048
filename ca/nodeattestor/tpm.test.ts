// The tpm node attestor against real software TPMs (swtpm, EK certificates
// from a CA this test makes with openssl): the contract suite, the happy
// path's identity and selectors, and every refusal with its exact message.
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWire, tpmAnswer, tpmChallenge, tpmPayload, wire } from '../../common/attestation-wire.js';
import { AnchorageError } from '../../common/errors.js';
import { parseTpm2bPublic } from '../../common/tpm2.js';
import { EK_POLICY_C_SHA384, ekPolicyASha384, policyOrSha384, TpmAgentAttestor } from '../../node-agent/nodeattestor/tpm.js';
import { nodeAttestorContract } from '../../test/contract/node-attestor.js';
import { lacks } from '../../test/helpers/needs.js';
import { freePort } from '../../test/helpers/process.js';
import { extendPcr, haveSwtpm, makeEkCa, manufactureTpm, startSwtpm, type EkCa, type Swtpm } from '../../test/helpers/swtpm.js';
import type { Challenge } from './NodeAttestor.js';
import { NodeAttestorRegistry } from './registry.js';
import { TpmAttestor } from './tpm.js';
import { parseCertificate } from './x509-chain.js';

const skip = lacks(!haveSwtpm(), 'swtpm, swtpm-tools, tpm2-tools and openssl');
const PCRS = [{ bank: 'sha256' as const, indices: [0, 7, 16] }];

let dir: string;
let ca: EkCa;
let otherCa: EkCa;
const tpms: Swtpm[] = [];

async function node(name: string, by: EkCa): Promise<Swtpm> {
  manufactureTpm(join(dir, name), by);
  const t = await startSwtpm(join(dir, name));
  tpms.push(t);
  return t;
}

function server(opts: { cas?: EkCa[]; hashes?: string[]; nowMs?: number } = {}): TpmAttestor {
  return new TpmAttestor({
    ekCas: (opts.cas ?? [ca]).map((c) => parseCertificate(new X509Certificate(c.certPem).raw, 'ca')),
    ekHashes: new Set(opts.hashes ?? []),
    pcrs: PCRS,
    now: () => Math.floor((opts.nowMs ?? Date.now()) / 1000),
  });
}

/** The agent's evidence and a challenge function answering through `agent`, optionally rewriting the answer. */
async function attempt(t: Swtpm, rewrite?: (answer: Buffer, challenge: Buffer) => Buffer | Promise<Buffer>) {
  const a = await new TpmAgentAttestor({ tcti: t.tcti }).begin();
  const challenge: Challenge = async (c) => {
    const answer = await a.respond(c);
    return rewrite ? rewrite(answer, c) : answer;
  };
  return { payload: a.payload, challenge, expects: a.expects };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    expect((err as AnchorageError).code).toBe('permission_denied');
    return (err as AnchorageError).message;
  }
  throw new Error('expected a refusal');
}

function ekHashOf(payload: Buffer): string {
  return createHash('sha256').update(parseTpm2bPublic(parseWire(tpmPayload, payload, 'p').ek_pub, 'ek').spki).digest('hex');
}

beforeAll(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'anchorage-tpm-'));
  ca = makeEkCa(dir, 'ek-ca');
  otherCa = makeEkCa(dir, 'other-ek-ca');
});

afterAll(() => {
  for (const t of tpms) t.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let shared: Swtpm | undefined;
let sharedPath = '';
describe('tpm server settings', () => {
  it('loads ek_ca_dir\'s *.pem and *.crt files, and refuses a missing, empty or non-PEM one with failed_precondition', () => {
    const d = mkdtempSync(join(tmpdir(), 'anchorage-ekcas-'));
    try {
      const settings = (ek_ca_dir: string) => ({ tpm: { ek_ca_dir, pcrs: PCRS } });
      const deps = { datastore: undefined as never, now: () => 0 };
      expect(() => NodeAttestorRegistry.fromConfig(settings(join(d, 'missing')), deps)).toThrow(
        new AnchorageError('failed_precondition', `node attestor: tpm.ek_ca_dir: cannot read ${join(d, 'missing')} (ENOENT)`),
      );
      expect(() => NodeAttestorRegistry.fromConfig(settings(d), deps)).toThrow(new AnchorageError('failed_precondition', 'node attestor: tpm.ek_ca_dir: no CA certificate found'));
      writeFileSync(join(d, 'junk.pem'), 'not a certificate\n');
      expect(() => NodeAttestorRegistry.fromConfig(settings(d), deps)).toThrow(
        new AnchorageError('failed_precondition', `node attestor: tpm.ek_ca_dir: ${join(d, 'junk.pem')}: no "CERTIFICATE" PEM block found`),
      );
      writeFileSync(join(d, 'junk.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
      expect(() => NodeAttestorRegistry.fromConfig(settings(d), deps)).toThrow(
        new AnchorageError('failed_precondition', `node attestor: tpm.ek_ca_dir: ${join(d, 'junk.pem')} certificate 1 is not a DER certificate`),
      );
      rmSync(join(d, 'junk.pem'));
      if (!skip) {
        const c = makeEkCa(d, 'ca-for-dir');
        writeFileSync(join(d, 'vendor.crt'), c.certPem);
        writeFileSync(join(d, 'README'), 'ignored: neither .pem nor .crt');
        expect(NodeAttestorRegistry.fromConfig({ join_token: {}, ...settings(d) }, deps).types()).toEqual(['join_token', 'tpm']);
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skip)('tpm on swtpm', () => {
  nodeAttestorContract('tpm (swtpm)', {
    challenges: true,
    trustDomain: 'contract.test',
    async setup() {
      if (!shared) {
        shared = await node('contract', ca);
        sharedPath = `/anchorage/agent/tpm/${ekHashOf((await new TpmAgentAttestor({ tcti: shared.tcti }).begin()).payload)}`;
      }
      return { server: server(), agent: new TpmAgentAttestor({ tcti: shared.tcti }), expectedAgentIdPath: sharedPath };
    },
  });

  nodeAttestorContract('tpm (swtpm, ECC P-384 EK)', {
    challenges: true,
    trustDomain: 'contract.test',
    async setup() {
      if (!shared) throw new Error('the RSA contract run makes the shared TPM first');
      const agent = new TpmAgentAttestor({ tcti: shared.tcti, ekAlgorithm: 'ecc384' });
      const path = `/anchorage/agent/tpm/${ekHashOf((await agent.begin()).payload)}`;
      return { server: server(), agent, expectedAgentIdPath: path };
    },
  });

  it('the ECC P-384 EK (NV 0x01c00016) is its own identity, with the same EK CA, through ECDH credential activation', async () => {
    const rsa = await attempt(shared!);
    const ecc = await new TpmAgentAttestor({ tcti: shared!.tcti, ekAlgorithm: 'ecc384' }).begin();
    const ek = parseTpm2bPublic(parseWire(tpmPayload, ecc.payload, 'p').ek_pub, 'ek');
    expect([ek.type, ek.bits, ek.symKeyBits]).toEqual(['ecc', 384, 256]);
    // The policy the agent satisfies is the one the EK demands: its authPolicy is PolicyOR(PolicyA, PolicyC).
    expect(ek.authPolicy.toString('hex')).toBe(policyOrSha384([ekPolicyASha384(), EK_POLICY_C_SHA384]).toString('hex'));
    expect(ek.authPolicy.toString('hex')).toBe('b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12');
    const r = await server().attest(ecc.payload, (c) => ecc.respond(c));
    expect(r.agentIdPath).toBe(`/anchorage/agent/tpm/${ekHashOf(ecc.payload)}`);
    expect(r.agentIdPath).not.toBe(`/anchorage/agent/tpm/${ekHashOf(rsa.payload)}`);
    expect(r.selectors[1]).toEqual({ type: 'tpm', value: `ek_ca:${createHash('sha256').update(new X509Certificate(ca.certPem).raw).digest('hex')}` });
    // A credential made for the ECC EK does not activate with the RSA one: the AK must be under this EK's TPM, and the secret is the EK's.
    const wrong = await refusal(server().attest(ecc.payload, (c) => rsa.challenge(c).catch(() => wire({ secret: Buffer.alloc(32), quote: Buffer.alloc(0), signature: Buffer.alloc(0), pcr_values: Buffer.alloc(0) }))));
    expect(wrong).toBe('agent api: tpm: credential activation failed: the AK is not in the TPM that holds this EK');
  });

  it('a node attests to the SHA-256 of its EK SPKI, with the EK CA and PCR selectors, again and again', async () => {
    const t = await node('happy', ca);
    const s = server();
    const a = await attempt(t);
    const ekHash = ekHashOf(a.payload);
    const r = await s.attest(a.payload, a.challenge);
    expect(r.agentIdPath).toBe(`/anchorage/agent/tpm/${ekHash}`);
    const caFp = createHash('sha256').update(new X509Certificate(ca.certPem).raw).digest('hex');
    const zero = '00'.repeat(32);
    expect(r.selectors).toEqual([
      { type: 'tpm', value: `ek_pub_hash:${ekHash}` },
      { type: 'tpm', value: `ek_ca:${caFp}` },
      { type: 'tpm', value: `pcr:sha256:0:${zero}` },
      { type: 'tpm', value: `pcr:sha256:7:${zero}` },
      { type: 'tpm', value: `pcr:sha256:16:${zero}` },
    ]);
    // Nothing is spent: the same node attests again, to the same ID.
    const again = await attempt(t);
    expect((await s.attest(again.payload, again.challenge)).agentIdPath).toBe(r.agentIdPath);
    // After a PCR is extended, the new value is what the node is attested with.
    extendPcr(t.tcti, 16, 'booted something else', dir);
    const after = await attempt(t);
    const r2 = await s.attest(after.payload, after.challenge);
    const pcr16 = r2.selectors.find((x) => x.value.startsWith('pcr:sha256:16:'))!.value;
    expect(pcr16).not.toBe(`pcr:sha256:16:${zero}`);
    expect(pcr16).toMatch(/^pcr:sha256:16:[0-9a-f]{64}$/);
  });

  it('an EK whose CA is not trusted is refused; trusted by its hash it is accepted', async () => {
    const t = await node('untrusted', otherCa);
    const a = await attempt(t);
    expect(await refusal(server().attest(a.payload, a.challenge))).toBe('agent api: tpm: EK certificate does not chain to a CA in ek_ca_dir');
    const b = await attempt(t);
    const r = await server({ hashes: [ekHashOf(b.payload)] }).attest(b.payload, b.challenge);
    expect(r.selectors.map((x) => x.value).filter((v) => v.startsWith('ek_ca:'))).toEqual([]);
  });

  it('an EK certificate past its CA\'s lifetime is refused', async () => {
    const t = shared ?? (await node('late', ca));
    const a = await attempt(t);
    expect(await refusal(server({ nowMs: Date.now() + 40 * 86400_000 }).attest(a.payload, a.challenge))).toMatch(/^agent api: tpm: trusted CA CN=ek-ca expired at /);
  });

  it('an AK from another TPM fails credential activation', async () => {
    const t1 = shared!;
    const t2 = await node('other', ca);
    const a1 = await attempt(t1);
    const a2 = await attempt(t2);
    // Node 1's EK (and certificate) with node 2's AK: the credential is for node 1's EK, which node 2's TPM lacks.
    const p1 = parseWire(tpmPayload, a1.payload, 'p');
    const p2 = parseWire(tpmPayload, a2.payload, 'p');
    const mixed = wire({ ek_pub: p1.ek_pub, ek_cert: p1.ek_cert, ak_pub: p2.ak_pub });
    const agent2 = await new TpmAgentAttestor({ tcti: t2.tcti }).begin();
    const msg = await refusal(
      server().attest(mixed, async (c) => {
        // The agent of node 2 answers; its TPM cannot activate a credential made for node 1's EK.
        try {
          return await agent2.respond(c);
        } catch {
          return wire({ secret: Buffer.alloc(32), quote: Buffer.alloc(0), signature: Buffer.alloc(0), pcr_values: Buffer.alloc(0) });
        }
      }),
    );
    expect(msg).toBe('agent api: tpm: credential activation failed: the AK is not in the TPM that holds this EK');
  });

  it('a replayed quote is refused as stale, a forged PCR value as a digest mismatch, a foreign signature as such', async () => {
    const t = shared!;
    const first = await attempt(t);
    let recorded: Buffer | undefined;
    await server().attest(first.payload, async (c) => {
      recorded = await first.challenge(c);
      return recorded;
    });
    const old = parseWire(tpmAnswer, recorded!, 'a');
    // A new attestation whose credential is activated for real, with the recorded quote.
    const replay = await attempt(t, (answer) => wire({ ...parseWire(tpmAnswer, answer, 'a'), quote: old.quote, signature: old.signature, pcr_values: old.pcr_values }));
    expect(await refusal(server().attest(replay.payload, replay.challenge))).toBe("agent api: tpm: the quote is not over this attestation's nonce (stale or replayed)");

    const forged = await attempt(t, (answer) => {
      const a = parseWire(tpmAnswer, answer, 'a');
      const values = Buffer.from(a.pcr_values);
      values[0]! ^= 1;
      return wire({ ...a, pcr_values: values });
    });
    expect(await refusal(server().attest(forged.payload, forged.challenge))).toBe("agent api: tpm: the PCR values do not match the quote's PCR digest");

    const badSig = await attempt(t, (answer) => {
      const a = parseWire(tpmAnswer, answer, 'a');
      const sig = Buffer.from(a.signature);
      sig[sig.length - 1]! ^= 1;
      return wire({ ...a, signature: sig });
    });
    expect(await refusal(server().attest(badSig.payload, badSig.challenge))).toBe('agent api: tpm: the quote signature does not verify with the AK');

    const fewer = await attempt(t, (answer) => {
      const a = parseWire(tpmAnswer, answer, 'a');
      return wire({ ...a, pcr_values: a.pcr_values.subarray(0, 64) });
    });
    expect(await refusal(server().attest(fewer.payload, fewer.challenge))).toBe('agent api: tpm: fewer PCR values than the quote covers');
  });

  it('refuses an AK that is not a restricted signing key, an EK certificate for another EK, and a certificate-less EK not in ek_hashes, before any challenge', async () => {
    const a1 = await attempt(shared!);
    const p1 = parseWire(tpmPayload, a1.payload, 'p');
    const never: Challenge = () => Promise.reject(new Error('no challenge expected'));
    // TPM2B_PUBLIC: size, type, nameAlg, then the 32-bit attributes; bit 16 is restricted.
    const ak = Buffer.from(p1.ak_pub);
    ak[7]! &= ~0x01;
    expect(await refusal(server().attest(wire({ ...p1, ak_pub: ak }), never))).toBe('agent api: tpm: the AK is not a restricted signing key fixed to its TPM');
    const other = parseWire(tpmPayload, (await attempt(await node('third', ca))).payload, 'p');
    expect(await refusal(server().attest(wire({ ...p1, ek_pub: other.ek_pub }), never))).toBe('agent api: tpm: the EK certificate is not for the EK the agent sent');
    const noCert = wire({ ek_pub: p1.ek_pub, ak_pub: p1.ak_pub });
    expect(await refusal(server().attest(noCert, never))).toBe(`agent api: tpm: EK ${ekHashOf(a1.payload)} has no certificate and is not in ek_hashes`);
    // Trusted by its hash alone, a certificate-less EK attests, without an ek_ca selector.
    const fresh = await attempt(shared!);
    const pf = parseWire(tpmPayload, fresh.payload, 'p');
    const r = await server({ cas: [], hashes: [ekHashOf(fresh.payload)] }).attest(wire({ ek_pub: pf.ek_pub, ak_pub: pf.ak_pub }), fresh.challenge);
    expect(r.selectors[0]).toEqual({ type: 'tpm', value: `ek_pub_hash:${ekHashOf(fresh.payload)}` });
    expect(r.selectors.some((x) => x.value.startsWith('ek_ca:'))).toBe(false);
  });

  it('the agent reports an unreachable TPM (unavailable) and missing tpm2-tools (failed_precondition) in one line', async () => {
    const closed = `swtpm:host=127.0.0.1,port=${await freePort()}`;
    const err = await new TpmAgentAttestor({ tcti: closed }).begin().then(
      () => undefined,
      (e: unknown) => e as AnchorageError,
    );
    expect(err?.code).toBe('unavailable');
    expect(err?.message).toMatch(new RegExp(`^agent: tpm: tpm2_flushcontext failed \\(TCTI ${closed}\\): ERROR`));
    const path = process.env.PATH;
    process.env.PATH = join(dir, 'no-tools');
    try {
      await expect(new TpmAgentAttestor({ tcti: shared!.tcti }).begin()).rejects.toThrow(
        new AnchorageError('failed_precondition', 'agent: tpm: tpm2_flushcontext not found: install tpm2-tools'),
      );
    } finally {
      process.env.PATH = path;
    }
  });

  it('the challenge names the configured PCRs and a 32-byte nonce; a malformed payload is invalid_argument', async () => {
    const t = shared!;
    const a = await attempt(t);
    let seen: Buffer | undefined;
    await server().attest(a.payload, async (c) => {
      seen = c;
      return a.challenge(c);
    });
    const c = parseWire(tpmChallenge, seen!, 'c');
    expect(c.pcrs).toEqual(PCRS);
    expect(c.nonce.length).toBe(32);
    expect(() => server().precheck(Buffer.from('{"ek_pub":"AAA=","ak_pub":"AAA="}'))).toThrow(new AnchorageError('invalid_argument', 'tpm2: EK public area is truncated'));
    expect(() => server().precheck(Buffer.from('{"ek_pub":"AAA="}'))).toThrow(new AnchorageError('invalid_argument', 'agent api: tpm: payload: ak_pub: Invalid input: expected string, received undefined'));
    expect(() => server().precheck(Buffer.from('nope'))).toThrow(new AnchorageError('invalid_argument', 'agent api: tpm: payload is not JSON'));
  });
});
