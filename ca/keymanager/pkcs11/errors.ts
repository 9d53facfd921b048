/**
 * What each CKR_ code means to the manager: which ones a new session fixes,
 * which ones mean the token (not the request) is in trouble and start the
 * background recovery, and which AnchorageError code each becomes. One place,
 * so the session pool, the key lookups and the manager classify alike.
 */
import { AnchorageError, errorMessage } from '@anchorage/client/errors';

/** The CKR_* name of a PKCS#11 error, or undefined for anything else. */
export function ckr(err: unknown): string | undefined {
  if (err instanceof Error && /^CKR_[A-Z0-9_]+$/.test(err.message)) return err.message;
  return undefined;
}

/** The session is gone or useless; a new one (and maybe a new login) fixes it. */
export const SESSION_LOST = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_OPERATION_ACTIVE',
]);
/** The token was re-inserted or re-enumerated; the slot has to be found again by label. */
export const SLOT_LOST = new Set(['CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT']);
/** Cached object handles no longer name the object; look it up again by label. */
export const HANDLE_INVALID = new Set(['CKR_KEY_HANDLE_INVALID', 'CKR_OBJECT_HANDLE_INVALID']);
const UNAVAILABLE = new Set([
  ...SESSION_LOST,
  'CKR_GENERAL_ERROR',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_HOST_MEMORY',
  'CKR_SESSION_COUNT',
  'CKR_FUNCTION_FAILED',
]);

/**
 * The token or the module is in trouble, not the request: the fix is new
 * sessions, a new login, handles found again and maybe a re-initialized
 * module, which the manager does on its own (see Pkcs11KeyManager, recovery).
 */
export const TOKEN_TROUBLE = new Set([
  ...SESSION_LOST,
  'CKR_DEVICE_ERROR',
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_DEVICE_MEMORY',
]);

export function p11Error(what: string, err: unknown): AnchorageError {
  if (err instanceof AnchorageError) return err;
  const code = ckr(err);
  if (code === undefined) return new AnchorageError('internal', `pkcs11: ${what} failed: ${errorMessage(err)}`, { cause: err });
  const errCode = UNAVAILABLE.has(code) ? 'unavailable' : HANDLE_INVALID.has(code) ? 'not_found' : 'internal';
  return new AnchorageError(errCode, `pkcs11: ${what} failed: ${code}`, { cause: err });
}

export function loginError(tokenLabel: string, err: unknown): AnchorageError {
  const prefix = `pkcs11: login to token "${tokenLabel}" failed`;
  switch (ckr(err)) {
    case 'CKR_PIN_INCORRECT':
      return new AnchorageError('permission_denied', `${prefix}: incorrect pin`, { cause: err });
    case 'CKR_PIN_LOCKED':
      return new AnchorageError('permission_denied', `${prefix}: the user pin is locked (the security officer must unlock it)`, { cause: err });
    case 'CKR_PIN_EXPIRED':
      return new AnchorageError('permission_denied', `${prefix}: the user pin has expired`, { cause: err });
    case 'CKR_PIN_LEN_RANGE':
    case 'CKR_PIN_INVALID':
      return new AnchorageError('permission_denied', `${prefix}: the pin has an invalid length or characters`, { cause: err });
    case 'CKR_USER_PIN_NOT_INITIALIZED':
      return new AnchorageError('failed_precondition', `${prefix}: the user pin is not initialized`, { cause: err });
    default:
      return p11Error(`login to token "${tokenLabel}"`, err);
  }
}

/** The token is not there at all (no slot has its label): an outage once the manager is open. */
export function isTokenGone(err: unknown): boolean {
  return err instanceof AnchorageError && err.code === 'not_found' && err.message.startsWith('pkcs11: no token labelled');
}
