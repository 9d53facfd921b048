import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newKeyAndCsr } from '../../common/csr-create.js';
import { errorMessage, invalid } from '@anchorage/client/errors';
import { toPem } from '@anchorage/client/pem';
import { action, type CommandGroup } from '../command.js';
import { esc, need, out, seconds, withAdmin } from '../args.js';

/** Writes files into `dir` so that either all of them appear or none does. */
function writeAllOrNothing(dir: string, files: Array<{ name: string; data: string; mode: number }>): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  else if (!statSync(dir).isDirectory()) throw invalid(`cli: --out-dir ${dir} is not a directory`);
  const staged: Array<{ tmp: string; final: string }> = [];
  try {
    for (const f of files) {
      const tmp = join(dir, `.${f.name}.${process.pid}.tmp`);
      writeFileSync(tmp, f.data, { mode: f.mode, flag: 'wx' });
      staged.push({ tmp, final: join(dir, f.name) });
    }
    for (const s of staged) renameSync(s.tmp, s.final);
  } catch (err) {
    for (const s of staged) rmSync(s.tmp, { force: true });
    throw invalid(`cli: cannot write to ${dir}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

export const command: CommandGroup = {
  name: 'x509',
  summary: 'X509-SVIDs minted by the server for a caller of the admin API.',
  actions: {
    mint: action({
      name: 'x509 mint',
      synopsis: '--spiffe-id ID [--ttl DURATION] [--dns NAME]... --out-dir DIR',
      summary:
        'Makes a P-256 key here, sends only a CSR, and writes svid.pem (chain, leaf first), key.pem (0600)\nand bundle.pem into DIR, all or none.',
      flags: {
        'spiffe-id': { type: 'string', arg: 'ID', help: "the SVID's SPIFFE ID" },
        ttl: { type: 'string', arg: 'DURATION', help: 'lifetime (default: x509_svid_ttl of the server)' },
        dns: { type: 'string', multiple: true, arg: 'NAME', help: 'a DNS name in the SVID' },
        'out-dir': { type: 'string', arg: 'DIR', help: 'where the three files go (made 0700 if missing)' },
      },
      async run(v) {
        const spiffeId = need(v['spiffe-id'], 'spiffe-id');
        const outDir = need(v['out-dir'], 'out-dir');
        const ttl = seconds(v.ttl, 'ttl');
        // The key is made here, by the caller, and never sent anywhere; the CSR
        // only proves possession (the server takes the ID from the request).
        const { csr, privateKey } = newKeyAndCsr();
        const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
        const res = await withAdmin(v, (a) => a.call('MintX509SVID', { csr, spiffe_id: spiffeId, ttl, dns_names: v.dns ?? [] }));
        writeAllOrNothing(outDir, [
          { name: 'svid.pem', data: res.chain.map((d) => toPem('CERTIFICATE', d)).join(''), mode: 0o644 },
          { name: 'key.pem', data: keyPem, mode: 0o600 },
          { name: 'bundle.pem', data: res.bundle.map((d) => toPem('CERTIFICATE', d)).join(''), mode: 0o644 },
        ]);
        const leaf = new X509Certificate(res.chain[0]!);
        out(
          v.json,
          { spiffe_id: spiffeId, expires_at: res.expires_at, serial: leaf.serialNumber, files: ['svid.pem', 'key.pem', 'bundle.pem'].map((f) => join(outDir, f)) },
          () => `SPIFFE ID: ${esc(spiffeId)}\nExpires  : ${new Date(res.expires_at * 1000).toISOString()}\nWrote    : ${join(outDir, 'svid.pem')}, key.pem, bundle.pem\n`,
        );
      },
    }),
  },
};
