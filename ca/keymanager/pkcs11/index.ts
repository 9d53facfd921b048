/**
 * The PKCS#11 key manager's public names, in one place: the manager, its
 * options, the process-wide module registry (tests and benchmarks share the
 * manager's loaded module through it) and the CKR_ name helper.
 */
export { Pkcs11KeyManager, type Pkcs11Options } from './manager.js';
export { acquirePkcs11Module, ckr, type Pkcs11Module } from './manager.js';
