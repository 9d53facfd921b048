// TPM2_MakeCredential done in software (TPM 2.0 Library, Part 1, 24 "Credential
// Protection"; Part 3, TPM2_MakeCredential): wraps a secret so that only the
// TPM holding the EK can unwrap it, and only for a key whose name is `name`
// (TPM2_ActivateCredential checks both). This is what binds the AK to the EK.
// RSA EKs only: the RSA-2048 EK whose certificate is at NV 0x01c00002.
import { constants, createCipheriv, createHmac, publicEncrypt, randomBytes } from 'node:crypto';
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

/** What TPM2_ActivateCredential takes: TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, each with its size. */
export interface MadeCredential {
  credentialBlob: Buffer;
  encryptedSecret: Buffer;
}

/** Wraps `credential` (at most the EK name hash's size) for the key named `name`, under `ek`. */
export function makeCredential(ek: TpmPublic, name: Buffer, credential: Buffer): MadeCredential {
  if (ek.type !== 'rsa') throw new AnchorageError('invalid_argument', 'agent api: tpm: only RSA endorsement keys are supported (the EK of NV 0x01c00002)');
  if (ek.symKeyBits === 0 || ek.symMode !== TPM_ALG.CFB) throw new AnchorageError('invalid_argument', 'agent api: tpm: the EK is not a storage key with AES-CFB');
  const hash = TPM_HASHES.get(ek.nameAlg)!;
  if (credential.length > hash.size) throw new AnchorageError('internal', 'tpm: credential is longer than the EK name hash');
  // The seed is as long as the name hash (Part 1, B.10.4 for RSA).
  const seed = randomBytes(hash.size);
  const encryptedSecret = publicEncrypt(
    { key: ek.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash.name, oaepLabel: Buffer.from('IDENTITY\0', 'latin1') },
    seed,
  );
  const symKey = kdfa(hash.name, seed, 'STORAGE', name, Buffer.alloc(0), ek.symKeyBits);
  const cipher = createCipheriv(`aes-${ek.symKeyBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(tpm2b(credential)), cipher.final()]);
  const hmacKey = kdfa(hash.name, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), hash.size * 8);
  const integrity = createHmac(hash.name, hmacKey).update(encIdentity).update(name).digest();
  return { credentialBlob: tpm2b(Buffer.concat([tpm2b(integrity), encIdentity])), encryptedSecret: tpm2b(encryptedSecret) };
}
