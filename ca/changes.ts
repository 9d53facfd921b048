import { EventEmitter } from 'node:events';

/**
 * In-process notifications of changes that connected agents must see at
 * once (the agent API pushes them; nothing polls). Emitted by the admin
 * service after a write has committed.
 */
export class ChangeFeed extends EventEmitter {
  /** Registration entries were created, changed or deleted (their IDs). */
  entriesChanged(ids: string[]): void {
    this.emit('entries', ids);
  }

  /** An agent was evicted: its streams must end now. */
  agentEvicted(spiffeId: string): void {
    this.emit('evicted', spiffeId);
  }

  /** Federated bundles changed. */
  bundlesChanged(): void {
    this.emit('bundles');
  }

  /** This server changed the CA journal or the own bundle (ca/manager.ts 'journal'): other servers reload. */
  caChanged(): void {
    this.emit('ca');
  }

  /** Another server changed the CA journal or the own bundle (relayed by ca/cluster/): reload the CA. */
  remoteCaChanged(): void {
    this.emit('ca-remote');
  }

  /**
   * Anything may have changed (changes made on another server were missed,
   * ca/cluster/): every agent stream makes a full pass.
   */
  everythingChanged(): void {
    this.emit('everything');
  }
}
