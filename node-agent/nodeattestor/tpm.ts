// tpm on the agent: proves the node's TPM 2.0 through tpm2-tools (Debian
// `tpm2-tools`), over the TCTI of agent.yaml (`device:/dev/tpmrm0` by
// default, `swtpm:host=…,port=…` for a software TPM). tpm2-tools rather than
// a TPM command layer of our own: the EK template, the policy session that
// ActivateCredential needs for the EK and the context files are theirs,
// tested against real TPMs; an attestation runs a dozen short tool calls, a
// few hundred milliseconds, once per agent SVID lifetime.
//
// Without a resource manager (swtpm, or /dev/tpm0) loaded objects stay in
// the TPM until flushed, and libtpms holds only 3: every step that loads one
// is followed by a flush, and each attempt starts by flushing what a crashed
// run may have left.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseWire, tpmChallenge, wire } from '../../common/attestation-wire.js';
import { AnchorageError, errorMessage } from '../../common/errors.js';
import { parseTpm2bPublic } from '../../common/tpm2.js';
import type { AttestationAttempt, NodeAttestor } from './NodeAttestor.js';

export const TPM = 'tpm';
/**
 * The EKs the agent can use: the tpm2-tools template (`tpm2_createek -G`) and
 * the NV index of its certificate (TCG EK Credential Profile): the RSA-2048
 * low-range EK, or the ECC P-384 high-range one.
 */
export const EK_ALGORITHMS = { rsa: { template: 'rsa', certIndex: '0x01c00002' }, ecc384: { template: 'ecc384', certIndex: '0x01c00016' } } as const;
export type EkAlgorithm = keyof typeof EK_ALGORITHMS;

/**
 * The policy that lets us use the high-range (SHA-384) EK: its authPolicy is
 * PolicyB = PolicyOR(PolicyA, PolicyC), where PolicyA is PolicySecret with
 * the endorsement hierarchy (computed here) and PolicyC a constant of the TCG
 * EK Credential Profile (2.4, PolicyC_SHA384). The agent checks that
 * PolicyOR(PolicyA, PolicyC) is the EK's authPolicy before relying on it. The
 * low-range RSA EK's policy is PolicyA alone (SHA-256).
 */
export const EK_POLICY_C_SHA384 = Buffer.from('d6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5b4947c2d73e63005eed2dc2b3593d165', 'hex');

/** A policy digest extended by one command: H(old || commandCode || args). */
function policyExtend(hash: string, old: Buffer, commandCode: number, ...args: Buffer[]): Buffer {
  const cc = Buffer.alloc(4);
  cc.writeUInt32BE(commandCode, 0);
  return createHash(hash).update(old).update(cc).update(Buffer.concat(args)).digest();
}

/** PolicyA for SHA-384: PolicySecret(TPM_RH_ENDORSEMENT) with an empty policyRef. */
export function ekPolicyASha384(): Buffer {
  const endorsement = Buffer.from('4000000b', 'hex');
  const withName = policyExtend('sha384', Buffer.alloc(48), 0x151, endorsement);
  return createHash('sha384').update(withName).digest(); // then H(digest || policyRef), policyRef empty
}

/** PolicyOR of `branches` (what the EK's authPolicy must equal). */
export function policyOrSha384(branches: Buffer[]): Buffer {
  return policyExtend('sha384', Buffer.alloc(48), 0x171, ...branches);
}
/** The default TCTI: the kernel's resource manager. */
export const DEFAULT_TCTI = 'device:/dev/tpmrm0';
/** Header of tpm2-tools' credential file (tpm2_makecredential -o, tpm2_activatecredential -i). */
const CRED_FILE_HEADER = Buffer.from('badcc0de00000001', 'hex');
/** Per tool call: a TPM making an RSA primary key can take seconds. */
const TOOL_TIMEOUT_MS = 60_000;

export interface TpmAgentOptions {
  /** tpm2-tools TCTI string, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`. */
  tcti: string;
  /** Which EK (default rsa). Each EK is its own agent ID: the ID names the EK's public key. */
  ekAlgorithm?: EkAlgorithm;
}

/** Runs one tpm2-tools command against the TCTI, in `cwd`. */
function tool(tcti: string, cwd: string, name: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      name,
      args,
      { cwd, env: { ...process.env, TPM2TOOLS_TCTI: tcti }, timeout: TOOL_TIMEOUT_MS, maxBuffer: 1 << 20 },
      (err, _stdout, stderr) => {
        if (!err) return resolve();
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          return reject(new AnchorageError('failed_precondition', `agent: tpm: ${name} not found: install tpm2-tools`));
        }
        const why = stderr.split('\n').find((l) => l.startsWith('ERROR')) ?? stderr.split('\n')[0] ?? errorMessage(err);
        reject(new AnchorageError('unavailable', `agent: tpm: ${name} failed (TCTI ${tcti}): ${why.trim()}`));
      },
    );
  });
}

/** A DER value's own length: NV indices of real TPMs may be padded past the certificate. */
function derLength(b: Buffer): number {
  if (b.length < 2 || b[0] !== 0x30) return b.length;
  const first = b[1]!;
  if (first < 0x80) return Math.min(b.length, 2 + first);
  const n = first & 0x7f;
  if (n > 4 || b.length < 2 + n) return b.length;
  return Math.min(b.length, 2 + n + b.subarray(2, 2 + n).reduce((acc, x) => acc * 256 + x, 0));
}

/** Agent side of tpm. */
export class TpmAgentAttestor implements NodeAttestor {
  readonly type = TPM;
  readonly #tcti: string;
  readonly #ek: (typeof EK_ALGORITHMS)[EkAlgorithm];

  constructor(opts: TpmAgentOptions) {
    this.#tcti = opts.tcti;
    this.#ek = EK_ALGORITHMS[opts.ekAlgorithm ?? 'rsa'];
  }

  /** Runs `fn` with a private temp dir holding `files`, then removes it. */
  async #inDir<T>(files: Record<string, Buffer>, fn: (run: (name: string, args: string[]) => Promise<void>, dir: string) => Promise<T>): Promise<T> {
    const dir = mkdtempSync(join(tmpdir(), 'anchorage-tpm-'));
    try {
      for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data, { mode: 0o600, flag: 'wx' });
      return await fn((name, args) => tool(this.#tcti, dir, name, args), dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async begin(): Promise<AttestationAttempt> {
    const made = await this.#inDir({}, async (run, dir) => {
      await run('tpm2_flushcontext', ['-t']);
      await run('tpm2_flushcontext', ['-s']);
      await run('tpm2_createek', ['-c', 'ek.ctx', '-G', this.#ek.template, '-u', 'ek.pub']);
      await run('tpm2_flushcontext', ['-t']);
      // An ECC P-256 AK: the TPM makes it in tens of milliseconds, an RSA one in about a second.
      await run('tpm2_createak', ['-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', 'ak.pub']);
      await run('tpm2_flushcontext', ['-t']);
      let ekCert: Buffer | undefined;
      try {
        await run('tpm2_nvread', [this.#ek.certIndex, '-o', 'ek.der']);
        const raw = readFileSync(join(dir, 'ek.der'));
        ekCert = raw.subarray(0, derLength(raw));
      } catch {
        ekCert = undefined; // no EK certificate: the server may still trust the EK by its hash
      }
      const read = (f: string) => readFileSync(join(dir, f));
      return { ekPub: read('ek.pub'), akPub: read('ak.pub'), ekCtx: read('ek.ctx'), akCtx: read('ak.ctx'), ekCert };
    });
    const ek = parseTpm2bPublic(made.ekPub, 'EK public area');
    if (this.#ek.template === 'ecc384' && !ek.authPolicy.equals(policyOrSha384([ekPolicyASha384(), EK_POLICY_C_SHA384]))) {
      throw new AnchorageError('failed_precondition', 'agent: tpm: the ecc384 EK does not have the TCG high-range EK policy; use ek_algorithm: rsa');
    }
    const ekHash = createHash('sha256').update(ek.spki).digest('hex');
    return {
      payload: wire({ ek_pub: made.ekPub, ak_pub: made.akPub, ...(made.ekCert ? { ek_cert: made.ekCert } : {}) }),
      respond: (c) => this.#respond(made.ekCtx, made.akCtx, c),
      refused: () => undefined, // nothing is spent: the next attempt makes new evidence
      expects: (agentId) => agentId.endsWith(`/anchorage/agent/${TPM}/${ekHash}`),
    };
  }

  /** Activates the credential with the EK and quotes the asked PCRs over the nonce with the AK. */
  async #respond(ekCtx: Buffer, akCtx: Buffer, challenge: Buffer): Promise<Buffer> {
    const c = parseWire(tpmChallenge, challenge, 'agent: tpm: challenge');
    const credFile = Buffer.concat([CRED_FILE_HEADER, c.credential_blob, c.encrypted_secret]);
    const pcrList = c.pcrs.map((p) => `${p.bank}:${p.indices.join(',')}`).join('+');
    const highRange = this.#ek.template === 'ecc384';
    const files: Record<string, Buffer> = { 'ek.ctx': ekCtx, 'ak.ctx': akCtx, 'cred.bin': credFile };
    if (highRange) Object.assign(files, { 'policy-a.bin': ekPolicyASha384(), 'policy-c.bin': EK_POLICY_C_SHA384 });
    return this.#inDir(files, async (run, dir) => {
      try {
        // The EK's policy: PolicySecret with the endorsement hierarchy (then, for the high-range EK, the PolicyOR above).
        await run('tpm2_startauthsession', ['--policy-session', '-S', 'session.ctx', ...(highRange ? ['-g', 'sha384'] : [])]);
        await run('tpm2_policysecret', ['-S', 'session.ctx', '-c', 'e']);
        if (highRange) await run('tpm2_policyor', ['-S', 'session.ctx', '-l', 'sha384:policy-a.bin,policy-c.bin']);
        await run('tpm2_activatecredential', ['-c', 'ak.ctx', '-C', 'ek.ctx', '-i', 'cred.bin', '-o', 'secret.bin', '-P', 'session:session.ctx']);
      } finally {
        await run('tpm2_flushcontext', ['-s']);
        await run('tpm2_flushcontext', ['-t']);
      }
      try {
        await run('tpm2_quote', ['-c', 'ak.ctx', '-l', pcrList, '-q', c.nonce.toString('hex'), '-m', 'quote.msg', '-s', 'quote.sig', '-o', 'pcrs.bin', '-F', 'values', '-g', 'sha256']);
      } finally {
        await run('tpm2_flushcontext', ['-t']);
      }
      const read = (f: string) => readFileSync(join(dir, f));
      return wire({ secret: read('secret.bin'), quote: read('quote.msg'), signature: read('quote.sig'), pcr_values: read('pcrs.bin') });
    });
  }
}
