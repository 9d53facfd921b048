/**
 * The PKCS#11 key manager's public names, in one place: the manager and its
 * options, the process-wide module registry (tests and benchmarks share the
 * manager's loaded module through it) and the CKR_ name of an error.
 * Importers use this file; the others are the manager's own parts.
 */
export { ckr } from './errors.js';
export { Pkcs11KeyManager, type Pkcs11Options } from './manager.js';
export { acquirePkcs11Module, type Pkcs11Module } from './module.js';
