import { describe, expect, it } from 'vitest';
import { ServerAddresses, splitHostPort, type Resolver } from './servers.js';

// The agent's list of servers: DNS names expand to every address, a failure
// moves to the next target (going round), and nothing moves otherwise.

/** A resolver from a table; names not in it fail as an unknown name does. */
function table(records: Record<string, string[]>, lookups: string[] = []): Resolver {
  return async (host) => {
    lookups.push(host);
    const r = records[host];
    if (r === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return r;
  };
}

describe('server addresses', () => {
  it('splits host:port, unbracketing IPv6', () => {
    expect(splitHostPort('h1.example:8081')).toEqual({ host: 'h1.example', port: '8081' });
    expect(splitHostPort('[fd00::1]:443')).toEqual({ host: 'fd00::1', port: '443' });
    expect(splitHostPort('10.0.0.1:1')).toEqual({ host: '10.0.0.1', port: '1' });
  });

  it('expands a name with several A/AAAA records into one target each, keeps IP literals, and keeps an unresolvable name as written', async () => {
    const s = new ServerAddresses(
      ['ca.example:8081', '10.0.0.9:8082', '[fd00::9]:8083', 'gone.example:8081'],
      table({ 'ca.example': ['10.0.0.1', '10.0.0.2', 'fd00::1'] }),
    );
    await s.refresh();
    expect(s.targets).toEqual(['10.0.0.1:8081', '10.0.0.2:8081', '[fd00::1]:8081', '10.0.0.9:8082', '[fd00::9]:8083', 'gone.example:8081']);
    expect(s.current).toBe('10.0.0.1:8081');
  });

  it('moves to the next target on each failure, going round, and counts only real moves', async () => {
    const s = new ServerAddresses(['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3']);
    await s.refresh();
    expect(s.current).toBe('127.0.0.1:1');
    expect(await s.next()).toEqual({ from: '127.0.0.1:1', to: '127.0.0.1:2' });
    expect(await s.next()).toEqual({ from: '127.0.0.1:2', to: '127.0.0.1:3' });
    expect(await s.next()).toEqual({ from: '127.0.0.1:3', to: '127.0.0.1:1' });
    expect(s.switches).toBe(3);
    // Sticky: nothing but a failure moves it.
    await s.refresh();
    expect(s.current).toBe('127.0.0.1:1');
    expect(s.switches).toBe(3);
  });

  it('has nowhere to move with a single target', async () => {
    const s = new ServerAddresses(['127.0.0.1:8081']);
    await s.refresh();
    expect(await s.next()).toBeUndefined();
    expect(s.current).toBe('127.0.0.1:8081');
    expect(s.switches).toBe(0);
  });

  it('looks names up again when it has gone round the list, and keeps the current target across a lookup', async () => {
    const records: Record<string, string[]> = { 'ca.example': ['10.0.0.1', '10.0.0.2'] };
    const lookups: string[] = [];
    const s = new ServerAddresses(['ca.example:8081'], table(records, lookups));
    await s.refresh();
    expect(await s.next()).toEqual({ from: '10.0.0.1:8081', to: '10.0.0.2:8081' });
    expect(lookups).toEqual(['ca.example']);
    // The record changed: the new address is found when the list comes round.
    records['ca.example'] = ['10.0.0.2', '10.0.0.3'];
    expect(await s.next()).toEqual({ from: '10.0.0.2:8081', to: '10.0.0.3:8081' });
    expect(lookups).toEqual(['ca.example', 'ca.example']);
    expect(s.targets).toEqual(['10.0.0.2:8081', '10.0.0.3:8081']);
    // A refresh that still holds the current target does not move it.
    await s.refresh();
    expect(s.current).toBe('10.0.0.3:8081');
  });

  it('refuses an empty list', () => {
    expect(() => new ServerAddresses([])).toThrow('agent: no server address');
  });
});
