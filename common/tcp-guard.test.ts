import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { captureLogger } from '../test/helpers/log.js';
import { checkDescriptorBudget, ConnectionCap, DESCRIPTOR_RESERVE, openFileLimit } from './tcp-guard.js';

let server: Server | undefined;
const clients: Socket[] = [];

afterEach(async () => {
  for (const c of clients) c.destroy();
  clients.length = 0;
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A listener guarded by `cap`; resolves to its port. */
function listen(cap: ConnectionCap): Promise<number> {
  server = createServer((s) => {
    if (cap.admit(s)) s.on('error', () => undefined);
  });
  return new Promise((r) => server!.listen(0, '127.0.0.1', () => r((server!.address() as { port: number }).port)));
}

/** Connects from `from` and resolves to whether the server kept the connection for 300 ms. */
function kept(port: number, from: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ host: '127.0.0.1', port, localAddress: from });
    clients.push(c);
    c.on('error', () => undefined);
    c.once('close', () => resolve(false));
    c.once('connect', () => setTimeout(() => resolve(!c.destroyed && c.readyState === 'open'), 300));
  });
}

describe('ConnectionCap', () => {
  it('refuses beyond the per-address cap, then beyond the global cap, and frees a slot on close', async () => {
    const { logger, records } = captureLogger();
    const cap = new ConnectionCap('test listener', { handshakeTimeoutMs: 1000, maxConnections: 3, maxConnectionsPerIp: 2 }, logger);
    const port = await listen(cap);
    expect([await kept(port, '127.0.0.2'), await kept(port, '127.0.0.2'), await kept(port, '127.0.0.2')]).toEqual([true, true, false]);
    expect([await kept(port, '127.0.0.3'), await kept(port, '127.0.0.3')]).toEqual([true, false]);
    expect(cap.open).toBe(3);
    // The first refusal is logged with its reason; the next ones within 10 s are only counted.
    const warnings = records.filter((r) => r.msg === 'test listener: connection limit reached; closing new connections');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ reason: 'max_connections_per_ip', remoteAddress: '127.0.0.2', open: 2, fromAddress: 2 });

    clients[0]!.destroy();
    for (let i = 0; i < 100 && cap.open !== 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(cap.open).toBe(2);
    expect(await kept(port, '127.0.0.2')).toBe(true);
  });
});

describe('checkDescriptorBudget', () => {
  it('reads the open file limit of this process', () => {
    expect(openFileLimit()).toBeGreaterThan(0);
  });

  it('warns only when the caps and the reserve exceed the limit', () => {
    const { logger, records } = captureLogger();
    expect(checkDescriptorBudget(1280, logger, 1280 + DESCRIPTOR_RESERVE)).toBe(true);
    expect(records).toEqual([]);
    expect(checkDescriptorBudget(1280, logger, 1024)).toBe(false);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ level: 40, connectionCaps: 1280, openFileLimit: 1024, reserve: 256 });
    expect(String(records[0]!.msg)).toContain('lower agent_api.max_connections / federation.bundle_endpoint.max_connections or raise the open file limit');
  });
});
