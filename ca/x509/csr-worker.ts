import { parentPort } from 'node:worker_threads';
import { AnchorageError } from '@anchorage/client/errors';
import { parseCsr } from './csr.js';
import type { CsrReply, CsrRequest } from './csr-pool.js';

/**
 * Worker side of CsrVerifierPool: parses and verifies batches of CSRs off the
 * main thread, which is busy driving the HSM.
 */
parentPort!.on('message', async (batch: CsrRequest[]) => {
  const replies = await Promise.all(
    batch.map(async ({ id, der }): Promise<CsrReply> => {
      try {
        const csr = await parseCsr(der);
        return { id, ok: true, spki: csr.spki, keyType: csr.keyType };
      } catch (err) {
        if (err instanceof AnchorageError) return { id, ok: false, code: err.code, message: err.message };
        return { id, ok: false, code: 'internal', message: `csr: ${(err as Error).message}` };
      }
    }),
  );
  parentPort!.postMessage(replies);
});
