import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AnchorageError, type ErrorCode } from '@anchorage/client/errors';
import { parseCsr, type ParsedCsr } from './csr.js';

export interface CsrRequest {
  id: number;
  der: Uint8Array;
}

export type CsrReply =
  | { id: number; ok: true; spki: Uint8Array; keyType: ParsedCsr['keyType'] }
  | { id: number; ok: false; code: ErrorCode; message: string };

/** What minting needs from a verified CSR. */
export interface VerifiedCsr {
  spki: Uint8Array;
  keyType: ParsedCsr['keyType'];
}

/** Parses and verifies CSRs; the proof-of-possession check of the minting path. */
export interface CsrVerifier {
  verify(der: Uint8Array): Promise<VerifiedCsr>;
  close(): Promise<void>;
}

/** The compiled worker; under the test runner the sources are TypeScript, so fall back to dist/. */
function workerFile(): URL {
  const beside = new URL('./csr-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  const built = new URL('../../dist/ca/x509/csr-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error('csr: the compiled CSR worker is missing; run "npm run build"');
}

interface Slot {
  worker: Worker;
  inFlight: number;
}

/**
 * Verifies CSR signatures on worker threads. On the minting path the main
 * thread builds and assembles every certificate and queues every signature,
 * and a P-256 CSR check costs about 0.1 ms of CPU (native/ecverify), so doing
 * both on one thread caps minting at a fraction of the HSM's rate. Requests
 * made in the same turn of the event loop travel to a worker as one message,
 * which keeps the per-CSR messaging cost to a few microseconds.
 */
export class CsrVerifierPool implements CsrVerifier {
  private readonly slots: Slot[];
  private readonly pending = new Map<number, { resolve: (v: VerifiedCsr) => void; reject: (e: unknown) => void }>();
  private queue: CsrRequest[] = [];
  private flushScheduled = false;
  private nextId = 1;
  private closed = false;

  constructor(opts: { workers?: number } = {}) {
    const n = opts.workers ?? Math.max(1, availableParallelism());
    const file = workerFile();
    this.slots = Array.from({ length: n }, () => {
      const slot: Slot = { worker: new Worker(file), inFlight: 0 };
      slot.worker.on('message', (replies: CsrReply[]) => this.onReplies(slot, replies));
      slot.worker.on('error', (err) => this.failAll(err));
      slot.worker.unref();
      return slot;
    });
  }

  verify(der: Uint8Array): Promise<VerifiedCsr> {
    if (this.closed) return Promise.reject(new AnchorageError('unavailable', 'csr: the verifier is closed'));
    if (!(der instanceof Uint8Array)) return Promise.reject(new AnchorageError('invalid_argument', 'csr: not valid DER (not a byte array)'));
    const id = this.nextId++;
    // A copy: the caller's buffer may be a view into a larger pooled one.
    this.queue.push({ id, der: Uint8Array.from(der) });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    // Split across workers in proportion to what each has in flight.
    const per = Math.ceil(batch.length / this.slots.length);
    const slots = [...this.slots].sort((a, b) => a.inFlight - b.inFlight);
    for (let i = 0, s = 0; i < batch.length; i += per, s++) {
      const part = batch.slice(i, i + per);
      const slot = slots[s % slots.length]!;
      slot.inFlight += part.length;
      slot.worker.ref();
      slot.worker.postMessage(part);
    }
  }

  private onReplies(slot: Slot, replies: CsrReply[]): void {
    slot.inFlight -= replies.length;
    if (slot.inFlight === 0) slot.worker.unref();
    for (const r of replies) {
      const p = this.pending.get(r.id);
      if (!p) continue;
      this.pending.delete(r.id);
      if (r.ok) p.resolve({ spki: r.spki, keyType: r.keyType });
      else p.reject(new AnchorageError(r.code, r.message));
    }
  }

  private failAll(err: unknown): void {
    const e = new AnchorageError('internal', `csr: verifier worker failed: ${(err as Error).message}`);
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new Error('closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

/** The same contract on the calling thread, for tools and tests that mint a handful. */
export class InlineCsrVerifier implements CsrVerifier {
  async verify(der: Uint8Array): Promise<VerifiedCsr> {
    const csr = await parseCsr(der);
    return { spki: csr.spki, keyType: csr.keyType };
  }

  async close(): Promise<void> {}
}
