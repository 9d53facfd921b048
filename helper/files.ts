import { toPem } from '../common/pem.js';
import type { JwtSvid, X509Context, X509Svid } from '../workload-api/client/types.js';
import type { HelperConfig } from './config.js';
import type { GenerationFile } from './generations.js';

/** Certificates and bundles: anyone who may enter cert_dir may read them. */
export const CERT_MODE = 0o644;
/** The private key and JWT-SVIDs (bearer tokens): the helper's uid only. */
export const SECRET_MODE = 0o600;
/** Longest trust domain name that still makes a file name (`<td>.pem`) within NAME_MAX. */
const MAX_TD_FILE_NAME = 250;

type FileNames = Pick<HelperConfig, 'svid_file_name' | 'svid_key_file_name' | 'svid_bundle_file_name' | 'federated_bundles_dir_name' | 'include_federated_domains' | 'add_intermediates_to_bundle'>;

const pems = (ders: Iterable<Uint8Array>): string => [...ders].map((d) => toPem('CERTIFICATE', d)).join('');

/**
 * The X.509 files of one generation: the SVID's chain (leaf first), its key
 * (PKCS#8), its own trust domain's bundle, and one file per other trust
 * domain under the federated directory. Returns the trust domains left out
 * because their names cannot be file names.
 */
export function x509Files(names: FileNames, svid: X509Svid, ctx: X509Context): { files: GenerationFile[]; skipped: string[] } {
  const own = svid.spiffeId.trustDomain;
  const intermediates = svid.chain.slice(1).map((c) => c.raw);
  const ownRoots = ctx.bundles.get(own)?.authorities() ?? [];
  const federated = [...ctx.bundles].filter((b) => !b.trustDomain.equals(own));
  const bundle = [
    ...ownRoots,
    ...(names.add_intermediates_to_bundle ? intermediates : []),
    ...(names.include_federated_domains ? federated.flatMap((b) => b.authorities()) : []),
  ];
  const files: GenerationFile[] = [
    { name: names.svid_file_name, data: pems(names.add_intermediates_to_bundle ? [svid.chain[0]!.raw] : svid.chain.map((c) => c.raw)), mode: CERT_MODE },
    { name: names.svid_key_file_name, data: svid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, mode: SECRET_MODE },
    { name: names.svid_bundle_file_name, data: pems(bundle), mode: CERT_MODE },
  ];
  const skipped: string[] = [];
  for (const b of federated) {
    if (b.trustDomain.name.length > MAX_TD_FILE_NAME) skipped.push(b.trustDomain.name);
    else files.push({ name: `${names.federated_bundles_dir_name}/${b.trustDomain.name}.pem`, data: pems(b.authorities()), mode: CERT_MODE });
  }
  return { files, skipped };
}

/** A JWT-SVID file: the compact token alone (no newline), so a program can send the file's bytes as they are. */
export function jwtFile(name: string, svid: JwtSvid): GenerationFile {
  return { name, data: svid.token, mode: SECRET_MODE };
}

/** Whether two generations' files are the same, byte for byte (an update that changed nothing of ours is not written). */
export function sameFiles(a: readonly GenerationFile[], b: readonly GenerationFile[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((f, i) => f.name === b[i]!.name && f.mode === b[i]!.mode && Buffer.from(f.data).equals(Buffer.from(b[i]!.data)));
}
