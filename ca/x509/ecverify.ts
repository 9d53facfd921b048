import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

type NativeVerify = (curveBits: 256 | 384, point: Uint8Array, digest: Uint8Array, signature: Uint8Array) => number;

let native: NativeVerify | undefined;

/** native/ecverify is built by scripts/setup.sh; found from the sources and from dist/. */
function load(): NativeVerify {
  if (native) return native;
  for (const rel of ['../../native/ecverify/build/Release/ecverify.node', '../../../native/ecverify/build/Release/ecverify.node']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(fileURLToPath(url))) {
      native = (createRequire(import.meta.url)(fileURLToPath(url)) as { verify: NativeVerify }).verify;
      return native;
    }
  }
  throw new Error('ecverify: native/ecverify is not built; run "npm run build" (scripts/setup.sh builds it)');
}

/**
 * ECDSA check of a prehashed message against a raw uncompressed point.
 * Returns 'ok', 'bad-signature' or 'bad-key' (the point is not on the curve).
 * See native/ecverify/ecverify.c for why this is not node:crypto.
 */
export function ecdsaVerifyDigest(
  curveBits: 256 | 384,
  point: Uint8Array,
  digest: Uint8Array,
  signatureDer: Uint8Array,
): 'ok' | 'bad-signature' | 'bad-key' {
  const r = load()(curveBits, point, digest, signatureDer);
  return r === 1 ? 'ok' : r === 0 ? 'bad-signature' : 'bad-key';
}
