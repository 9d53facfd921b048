import { describe, expect, it } from 'vitest';
import { captureLogger, runKeyManagerContract } from '../../test/contract/keymanager.js';
import { MemoryKeyManager } from './memory.js';
import { AnchorageError } from '@anchorage/client/errors';

runKeyManagerContract('memory', async () => {
  const km = new MemoryKeyManager();
  return {
    km,
    reopen: () => Promise.reject(new Error('memory keys do not survive a restart')),
    cleanup: () => km.close(),
  };
});

describe('MemoryKeyManager', () => {
  it('warns loudly that the root of trust is in software', async () => {
    const { logger, records } = captureLogger();
    const km = new MemoryKeyManager({ logger });
    await new Promise((r) => setImmediate(r));
    const warn = records.find((r) => r.level === 40);
    expect(warn?.msg).toMatch(/software.*development only/);
    await km.close();
  });

  it('forgets everything on close', async () => {
    const km = new MemoryKeyManager();
    await km.generateKey('a', 'ec-p256');
    await km.close();
    await expect(km.listKeys()).rejects.toBeInstanceOf(AnchorageError);
  });
});
