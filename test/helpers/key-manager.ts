// A KeyManager that forwards every call to another one: tests subclass it to
// count, slow down or fail some calls of a real key manager.
import type { KeyHandle, KeyManager, KeyType } from '../../ca/keymanager/KeyManager.js';

export class ForwardingKeyManager implements KeyManager {
  constructor(protected readonly inner: KeyManager) {}
  get kind() {
    return this.inner.kind;
  }
  generateKey(id: string, type: KeyType): Promise<KeyHandle> {
    return this.inner.generateKey(id, type);
  }
  getKey(id: string): Promise<KeyHandle | undefined> {
    return this.inner.getKey(id);
  }
  listKeys() {
    return this.inner.listKeys();
  }
  deleteKey(id: string) {
    return this.inner.deleteKey(id);
  }
  close() {
    return this.inner.close();
  }
}
