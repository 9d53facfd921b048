// TPM2_MakeCredential done in software (TPM 2.0 Library, Part 1, 24 "Credential
// Protection"; Part 3, TPM2_MakeCredential): wraps a secret so that only the
// TPM holding the EK can unwrap it, and only for a key whose name is `name`
// (TPM2_ActivateCredential checks both). This is what binds the AK to the EK.
// The seed reaches the TPM under the EK: RSA-OAEP for an RSA EK (the RSA-2048
// EK of NV 0x01c00002), one-pass ECDH for an ECC one (the P-384 EK of NV
// 0x01c00016).
import { constants, createCipheriv, createECDH, createHash, createHmac, publicEncrypt, randomBytes } from 'node:crypto';
import { AnchorageError } from '../../common/errors.js';
import { TPM_ALG, TPM_HASHES, tpm2b, type TpmPublic } from '../../common/tpm2.js';

/** KDFa (Part 1, 11.4.10.2): SP 800-108 counter-mode HMAC KDF, `bits` of output. */
export function kdfa(hash: string, key: Buffer, label: string, contextU: Buffer, contextV: Buffer, bits: number): Buffer {
  const out: Buffer[] = [];
  const bitsBuf = Buffer.alloc(4);
  bitsBuf.writeUInt32BE(bits, 0);
  let have = 0;
  for (let i = 1; have * 8 < bits; i++) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(i, 0);
    const block = createHmac(hash, key)
      .update(counter)
      .update(Buffer.from(`${label}\0`, 'latin1'))
      .update(contextU)
      .update(contextV)
      .update(bitsBuf)
      .digest();
    out.push(block);
    have += block.length;
  }
  return Buffer.concat(out).subarray(0, Math.ceil(bits / 8));
}

/** KDFe (Part 1, 11.4.10.3): SP 800-56A concatenation KDF over the ECDH secret `z`. */
export function kdfe(hash: string, z: Buffer, label: string, partyU: Buffer, partyV: Buffer, bits: number): Buffer {
  const out: Buffer[] = [];
  let have = 0;
  for (let i = 1; have * 8 < bits; i++) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(i, 0);
    const block = createHash(hash).update(counter).update(z).update(Buffer.from(`${label}\0`, 'latin1')).update(partyU).update(partyV).digest();
    out.push(block);
    have += block.length;
  }
  return Buffer.concat(out).subarray(0, Math.ceil(bits / 8));
}

/** A fresh seed and how it travels to the EK's TPM (the contents of TPM2B_ENCRYPTED_SECRET). */
function seedFor(ek: TpmPublic, hash: { name: string; size: number }): { seed: Buffer; secret: Buffer } {
  if (ek.type === 'rsa') {
    // The seed is as long as the name hash (Part 1, B.10.4).
    const seed = randomBytes(hash.size);
    const secret = publicEncrypt(
      { key: ek.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash.name, oaepLabel: Buffer.from('IDENTITY\0', 'latin1') },
      seed,
    );
    return { seed, secret };
  }
  // Part 1, C.6.4: an ephemeral key on the EK's curve; the seed is KDFe of the
  // shared x-coordinate; the TPM gets the ephemeral point (TPMS_ECC_POINT).
  const jwk = ek.key.export({ format: 'jwk' });
  const ekX = Buffer.from(jwk.x!, 'base64url');
  const ekY = Buffer.from(jwk.y!, 'base64url');
  const ecdh = createECDH(ek.key.asymmetricKeyDetails!.namedCurve!);
  const point = ecdh.generateKeys();
  const ephX = point.subarray(1, 1 + ekX.length);
  const ephY = point.subarray(1 + ekX.length);
  const z = ecdh.computeSecret(Buffer.concat([Buffer.from([0x04]), ekX, ekY]));
  return { seed: kdfe(hash.name, z, 'IDENTITY', ephX, ekX, hash.size * 8), secret: Buffer.concat([tpm2b(ephX), tpm2b(ephY)]) };
}

/** What TPM2_ActivateCredential takes: TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, each with its size. */
export interface MadeCredential {
  credentialBlob: Buffer;
  encryptedSecret: Buffer;
}

/** Wraps `credential` (at most the EK name hash's size) for the key named `name`, under `ek`. */
export function makeCredential(ek: TpmPublic, name: Buffer, credential: Buffer): MadeCredential {
  if (ek.symKeyBits === 0 || ek.symMode !== TPM_ALG.CFB) throw new AnchorageError('invalid_argument', 'agent api: tpm: the EK is not a storage key with AES-CFB');
  const hash = TPM_HASHES.get(ek.nameAlg)!;
  if (credential.length > hash.size) throw new AnchorageError('internal', 'tpm: credential is longer than the EK name hash');
  const { seed, secret: encryptedSecret } = seedFor(ek, hash);
  const symKey = kdfa(hash.name, seed, 'STORAGE', name, Buffer.alloc(0), ek.symKeyBits);
  const cipher = createCipheriv(`aes-${ek.symKeyBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(tpm2b(credential)), cipher.final()]);
  const hmacKey = kdfa(hash.name, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), hash.size * 8);
  const integrity = createHmac(hash.name, hmacKey).update(encIdentity).update(name).digest();
  return { credentialBlob: tpm2b(Buffer.concat([tpm2b(integrity), encIdentity])), encryptedSecret: tpm2b(encryptedSecret) };
}
