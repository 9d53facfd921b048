// The x509pop node attestor with node certificates made by openssl: the
// contract suite, the identity and selectors, and the refusals (an expired
// certificate, one from another CA, a signature by another key).
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWire, wire, x509popAnswer } from '../../common/attestation-wire.js';
import { AnchorageError } from '../../common/errors.js';
import { X509PopAgentAttestor } from '../../node-agent/nodeattestor/x509pop.js';
import { nodeAttestorContract } from '../../test/contract/node-attestor.js';
import { issueNodeCert, makeOpensslCa, type OpensslCa } from '../../test/helpers/openssl-ca.js';
import { X509PopAttestor } from './x509pop.js';
import { loadCaCertificates } from './x509-chain.js';

let dir: string;
let ca: OpensslCa;
let other: OpensslCa;
let node1: { certFile: string; keyFile: string };

function server(cas = [ca]): X509PopAttestor {
  return new X509PopAttestor({ cas: loadCaCertificates(cas.map((c) => c.certFile), 'x509pop.ca_bundle_file'), now: () => Math.floor(Date.now() / 1000) });
}

async function run(s: X509PopAttestor, files: { certFile: string; keyFile: string }, rewrite?: (a: Buffer) => Buffer) {
  const a = await new X509PopAgentAttestor(files).begin();
  return s.attest(a.payload, async (c) => {
    const answer = await a.respond(c);
    return rewrite ? rewrite(answer) : answer;
  });
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

const fingerprint = (file: string) => createHash('sha256').update(new X509Certificate(readFileSync(file)).raw).digest('hex');

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-x509pop-'));
  ca = makeOpensslCa(dir, 'node-ca');
  other = makeOpensslCa(dir, 'other-ca');
  node1 = issueNodeCert(ca, dir, 'node1', { san: 'DNS:node1.example,URI:urn:node:1,IP:10.0.0.1' });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

nodeAttestorContract('x509pop (openssl certificates)', {
  challenges: true,
  trustDomain: 'contract.test',
  async setup() {
    return { server: server(), agent: new X509PopAgentAttestor(node1), expectedAgentIdPath: `/anchorage/agent/x509pop/${fingerprint(node1.certFile)}` };
  },
});

describe('x509pop', () => {
  it('names the node by its certificate fingerprint, with CN, CA fingerprint and SAN selectors; RSA keys work too', async () => {
    const r = await run(server(), node1);
    const caFp = createHash('sha256').update(new X509Certificate(ca.certPem).raw).digest('hex');
    expect(r.agentIdPath).toBe(`/anchorage/agent/x509pop/${fingerprint(node1.certFile)}`);
    expect(r.selectors).toEqual([
      { type: 'x509pop', value: 'subject:cn:node1' },
      { type: 'x509pop', value: `ca:fingerprint:${caFp}` },
      { type: 'x509pop', value: 'san:dns:node1.example' },
      { type: 'x509pop', value: 'san:uri:urn:node:1' },
      { type: 'x509pop', value: 'san:ip:10.0.0.1' },
    ]);
    const rsa = issueNodeCert(ca, dir, 'node-rsa', { key: 'rsa' });
    expect((await run(server(), rsa)).agentIdPath).toBe(`/anchorage/agent/x509pop/${fingerprint(rsa.certFile)}`);
  });

  it('refuses an expired certificate, one not yet valid, and one from another CA', async () => {
    const expired = issueNodeCert(ca, dir, 'expired', { start: '20200101000000Z', end: '20210101000000Z' });
    expect(await refusal(run(server(), expired))).toBe('agent api: x509pop: node certificate expired at 2021-01-01T00:00:00.000Z');
    const future = issueNodeCert(ca, dir, 'future', { start: '20990101000000Z', end: '20991231000000Z' });
    expect(await refusal(run(server(), future))).toBe('agent api: x509pop: node certificate is not valid before 2099-01-01T00:00:00.000Z');
    const stranger = issueNodeCert(other, dir, 'stranger');
    expect(await refusal(run(server(), stranger))).toBe('agent api: x509pop: node certificate does not chain to a CA in ca_bundle_file');
    expect((await run(server([ca, other]), stranger)).agentIdPath).toBe(`/anchorage/agent/x509pop/${fingerprint(stranger.certFile)}`);
  });

  it('refuses a signature by another key, and a CA certificate presented as the node certificate', async () => {
    const node2 = issueNodeCert(ca, dir, 'node2');
    const answer2: { value: Buffer } = { value: Buffer.alloc(0) };
    await run(server(), node2, (a) => (answer2.value = a));
    // node1's certificate with a signature node2's key made over another nonce.
    expect(await refusal(run(server(), node1, () => answer2.value))).toBe(
      "agent api: x509pop: the signature over the nonce does not verify with the node certificate's key",
    );
    expect(await refusal(run(server(), node1, (a) => wire({ signature: parseWire(x509popAnswer, a, 'a').signature.subarray(1) })))).toBe(
      "agent api: x509pop: the signature over the nonce does not verify with the node certificate's key",
    );
    expect(await refusal(run(server(), { certFile: ca.certFile, keyFile: ca.keyFile }))).toBe('agent api: x509pop: node certificate is a CA certificate, not a leaf');
    const encipherOnly = issueNodeCert(ca, dir, 'encipher-only', { key: 'rsa', keyUsage: 'critical,keyEncipherment' });
    expect(await refusal(run(server(), encipherOnly))).toBe("agent api: x509pop: the node certificate's keyUsage does not allow digitalSignature");
  });

  it('the agent refuses a key file others can read, a symbolic link, and a file that is no certificate', async () => {
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, readFileSync(node1.keyFile));
    chmodSync(loose, 0o644);
    await expect(new X509PopAgentAttestor({ certFile: node1.certFile, keyFile: loose }).begin()).rejects.toThrow(
      new AnchorageError('failed_precondition', `agent: x509pop: key_file: ${loose}: is readable by group or others (mode 644); chmod 600 it`),
    );
    const link = join(dir, 'link.pem');
    symlinkSync(node1.certFile, link);
    await expect(new X509PopAgentAttestor({ certFile: link, keyFile: node1.keyFile }).begin()).rejects.toThrow(
      new AnchorageError('failed_precondition', `agent: x509pop: cert_file: ${link}: is a symbolic link; give the real path`),
    );
    await expect(new X509PopAgentAttestor({ certFile: node1.keyFile, keyFile: node1.keyFile }).begin()).rejects.toThrow(
      new AnchorageError('failed_precondition', `agent: x509pop: ${node1.keyFile}: cert_file: no "CERTIFICATE" PEM block found`),
    );
  });

  it('the server refuses a malformed payload as invalid_argument, and a CA bundle without certificates at load', () => {
    expect(() => server().precheck(Buffer.from('{"chain":[]}'))).toThrow(new AnchorageError('invalid_argument', 'agent api: x509pop: payload: chain: Too small: expected array to have >=1 items'));
    expect(() => server().precheck(Buffer.from('{"chain":["AAAA"]}'))).toThrow(new AnchorageError('invalid_argument', 'agent api: x509pop: chain[0] is not a DER certificate'));
    const empty = join(dir, 'empty.pem');
    writeFileSync(empty, 'nothing here\n');
    expect(() => loadCaCertificates([empty], 'x509pop.ca_bundle_file')).toThrow(
      new AnchorageError('failed_precondition', `node attestor: x509pop.ca_bundle_file: ${empty}: no "CERTIFICATE" PEM block found`),
    );
    expect(() => loadCaCertificates([join(dir, 'missing.pem')], 'x509pop.ca_bundle_file')).toThrow(
      new AnchorageError('failed_precondition', `node attestor: x509pop.ca_bundle_file: ${join(dir, 'missing.pem')}: cannot open (ENOENT)`),
    );
  });
});
