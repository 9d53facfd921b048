// CAs and node certificates made with the openssl command, not with our own
// code: the x509pop tests' node PKI and the EK CA of the swtpm tests.
// `openssl ca` (not `x509 -req`) signs leaves, because OpenSSL 3.0 can set a
// validity window in the past only through `-startdate`/`-enddate`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface OpensslCa {
  dir: string;
  certFile: string;
  keyFile: string;
  certPem: string;
}

/** A self-signed RSA-2048 CA in `parent/name` (absolute paths), valid 30 days. */
export function makeOpensslCa(parent: string, name: string): OpensslCa {
  const dir = resolve(parent, name);
  mkdirSync(join(dir, 'issued'), { recursive: true, mode: 0o700 });
  const certFile = join(dir, 'issuercert.pem');
  const keyFile = join(dir, 'signkey.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', `/CN=${name}`, '-days', '30',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], { stdio: 'ignore' });
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[ca]', 'default_ca = local', '[local]', `dir = ${dir}`, 'database = $dir/index.txt', 'serial = $dir/serial',
      'new_certs_dir = $dir/issued', `certificate = ${certFile}`, `private_key = ${keyFile}`, 'default_md = sha256',
      'policy = any', 'unique_subject = no', 'copy_extensions = none', '[any]', 'commonName = supplied', '',
    ].join('\n'),
  );
  return { dir, certFile, keyFile, certPem: readFileSync(certFile, 'utf8') };
}

export interface NodeCertOptions {
  /** The key: `ec` (P-256, default) or `rsa`. */
  key?: 'ec' | 'rsa';
  /** subjectAltName value, e.g. `DNS:node1.example,URI:spiffe://x/y`. */
  san?: string;
  /** keyUsage value; default `critical,digitalSignature`. */
  keyUsage?: string;
  /** extendedKeyUsage value; default `clientAuth` (a node certificate). */
  extendedKeyUsage?: string;
  /** openssl ca -startdate / -enddate, `YYYYMMDDHHMMSSZ`; default: from now for 30 days. */
  start?: string;
  end?: string;
}

/** A node key (0600) and certificate signed by `ca` for CN=`cn`; returns their files. */
export function issueNodeCert(ca: OpensslCa, out: string, cn: string, opts: NodeCertOptions = {}): { certFile: string; keyFile: string } {
  const keyFile = join(out, `${cn}.key`);
  const csrFile = join(out, `${cn}.csr`);
  const certFile = join(out, `${cn}.pem`);
  const extFile = join(out, `${cn}.ext`);
  const keyArgs = opts.key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  execFileSync('openssl', ['req', '-new', ...keyArgs, '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${cn}`], { stdio: 'ignore' });
  execFileSync('chmod', ['600', keyFile]);
  writeFileSync(
    extFile,
    ['[ext]', 'basicConstraints = critical,CA:FALSE', `keyUsage = ${opts.keyUsage ?? 'critical,digitalSignature'}`, `extendedKeyUsage = ${opts.extendedKeyUsage ?? 'clientAuth'}`, ...(opts.san ? [`subjectAltName = ${opts.san}`] : []), ''].join('\n'),
  );
  const dates = opts.start && opts.end ? ['-startdate', opts.start, '-enddate', opts.end] : ['-days', '30'];
  execFileSync(
    'openssl',
    ['ca', '-batch', '-config', join(ca.dir, 'ca.cnf'), '-notext', '-in', csrFile, '-out', certFile, '-extfile', extFile, '-extensions', 'ext', ...dates],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile };
}
