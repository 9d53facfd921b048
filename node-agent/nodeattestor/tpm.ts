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
/** NV index of the RSA-2048 EK certificate (TCG EK Credential Profile). */
export const EK_CERT_NV_INDEX = '0x01c00002';
/** The default TCTI: the kernel's resource manager. */
export const DEFAULT_TCTI = 'device:/dev/tpmrm0';
/** Header of tpm2-tools' credential file (tpm2_makecredential -o, tpm2_activatecredential -i). */
const CRED_FILE_HEADER = Buffer.from('badcc0de00000001', 'hex');
/** Per tool call: a TPM making an RSA primary key can take seconds. */
const TOOL_TIMEOUT_MS = 60_000;

export interface TpmAgentOptions {
  /** tpm2-tools TCTI string, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`. */
  tcti: string;
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

  constructor(opts: TpmAgentOptions) {
    this.#tcti = opts.tcti;
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
      await run('tpm2_createek', ['-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub']);
      await run('tpm2_flushcontext', ['-t']);
      // An ECC P-256 AK: the TPM makes it in tens of milliseconds, an RSA one in about a second.
      await run('tpm2_createak', ['-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', 'ak.pub']);
      await run('tpm2_flushcontext', ['-t']);
      let ekCert: Buffer | undefined;
      try {
        await run('tpm2_nvread', [EK_CERT_NV_INDEX, '-o', 'ek.der']);
        const raw = readFileSync(join(dir, 'ek.der'));
        ekCert = raw.subarray(0, derLength(raw));
      } catch {
        ekCert = undefined; // no EK certificate: the server may still trust the EK by its hash
      }
      const read = (f: string) => readFileSync(join(dir, f));
      return { ekPub: read('ek.pub'), akPub: read('ak.pub'), ekCtx: read('ek.ctx'), akCtx: read('ak.ctx'), ekCert };
    });
    const ekHash = createHash('sha256').update(parseTpm2bPublic(made.ekPub, 'EK public area').spki).digest('hex');
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
    return this.#inDir({ 'ek.ctx': ekCtx, 'ak.ctx': akCtx, 'cred.bin': credFile }, async (run, dir) => {
      try {
        // The EK's policy: PolicySecret with the endorsement hierarchy.
        await run('tpm2_startauthsession', ['--policy-session', '-S', 'session.ctx']);
        await run('tpm2_policysecret', ['-S', 'session.ctx', '-c', 'e']);
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
