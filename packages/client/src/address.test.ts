import { describe, expect, it } from 'vitest';
import { isAnchorageError } from './common/errors.js';
import { ENDPOINT_SOCKET_ENV, parseWorkloadApiAddress, resolveWorkloadApiAddress } from './address.js';
import { Backoff } from './common/backoff.js';

describe('parseWorkloadApiAddress', () => {
  it.each([
    ['unix:///run/agent/api.sock', { network: 'unix', path: '/run/agent/api.sock', target: 'unix:///run/agent/api.sock' }],
    ['unix:/run/agent/api.sock', { network: 'unix', path: '/run/agent/api.sock', target: 'unix:///run/agent/api.sock' }],
    ['UNIX:///run/a.sock', { network: 'unix', path: '/run/a.sock', target: 'unix:///run/a.sock' }],
    ['unix:///tmp/my%20dir/a.sock', { network: 'unix', path: '/tmp/my dir/a.sock', target: 'unix:///tmp/my dir/a.sock' }],
    ['unix:////double/a.sock', { network: 'unix', path: '//double/a.sock', target: 'unix:////double/a.sock' }],
    ['tcp://127.0.0.1:8081', { network: 'tcp', host: '127.0.0.1', port: 8081, target: 'ipv4:127.0.0.1:8081' }],
    ['tcp://[::1]:8081', { network: 'tcp', host: '::1', port: 8081, target: 'ipv6:[::1]:8081' }],
  ])('accepts %s', (input, want) => {
    expect(parseWorkloadApiAddress(input)).toEqual(want);
  });

  it.each([
    ['', 'workloadapi: address is empty'],
    ['/run/agent.sock', 'workloadapi: address "/run/agent.sock": is a path, not a URI; want unix:///path/to/socket or tcp://IP:port'],
    ['run/agent.sock', 'workloadapi: address "run/agent.sock": has no scheme; want unix:///path/to/socket or tcp://IP:port'],
    ['http://127.0.0.1:80', 'workloadapi: address "http://127.0.0.1:80": unsupported scheme "http"; want unix:///path/to/socket or tcp://IP:port'],
    ['unix:', 'workloadapi: address "unix:": unix socket URI must include a path'],
    ['unix://', 'workloadapi: address "unix://": unix socket URI must include a path'],
    ['unix:relative/a.sock', 'workloadapi: address "unix:relative/a.sock": unix socket path must be absolute'],
    ['unix://host/run/a.sock', 'workloadapi: address "unix://host/run/a.sock": unix socket URI must not have an authority ("host"); use unix:///absolute/path'],
    ['unix://user@/run/a.sock', 'workloadapi: address "unix://user@/run/a.sock": must not include user info'],
    ['unix:///run/a.sock?mode=1', 'workloadapi: address "unix:///run/a.sock?mode=1": must not include a query'],
    ['unix:///run/a.sock#frag', 'workloadapi: address "unix:///run/a.sock#frag": must not include a fragment'],
    ['unix:///run/%zz.sock', 'workloadapi: address "unix:///run/%zz.sock": path has a malformed percent-encoding'],
    ['unix:///run/%00.sock', 'workloadapi: address "unix:///run/%00.sock": path must not contain NUL'],
    ['tcp:127.0.0.1:80', 'workloadapi: address "tcp:127.0.0.1:80": tcp URI must be tcp://IP:port'],
    ['tcp://127.0.0.1', 'workloadapi: address "tcp://127.0.0.1": tcp URI must include a port'],
    ['tcp://localhost:80', 'workloadapi: address "tcp://localhost:80": tcp host "localhost" must be an IP address'],
    ['tcp://:80', 'workloadapi: address "tcp://:80": tcp URI must include a host'],
    ['tcp://127.0.0.1:0', 'workloadapi: address "tcp://127.0.0.1:0": tcp port "0" must be a number from 1 to 65535'],
    ['tcp://127.0.0.1:70000', 'workloadapi: address "tcp://127.0.0.1:70000": tcp port "70000" must be a number from 1 to 65535'],
    ['tcp://127.0.0.1:80/path', 'workloadapi: address "tcp://127.0.0.1:80/path": tcp URI must not include a path'],
    ['tcp://u:p@127.0.0.1:80', 'workloadapi: address "tcp://u:p@127.0.0.1:80": must not include user info'],
    ['tcp://127.0.0.1:80?x', 'workloadapi: address "tcp://127.0.0.1:80?x": must not include a query'],
    ['tcp://[::1:80', 'workloadapi: address "tcp://[::1:80": tcp URI has an unterminated IPv6 address'],
    ['tcp://[fe80::zz]:80', 'workloadapi: address "tcp://[fe80::zz]:80": tcp host "fe80::zz" is not an IPv6 address'],
  ])('refuses %j', (input, message) => {
    let caught: unknown;
    try {
      parseWorkloadApiAddress(input);
    } catch (err) {
      caught = err;
    }
    expect(isAnchorageError(caught, 'invalid_argument')).toBe(true);
    expect((caught as Error).message).toBe(message);
  });

  it('accepts a bare absolute path only when asked to, literally (no percent-decoding)', () => {
    expect(parseWorkloadApiAddress('/run/my%20agent.sock', { allowBarePath: true })).toEqual({
      network: 'unix',
      path: '/run/my%20agent.sock',
      target: 'unix:///run/my%20agent.sock',
    });
  });
});

describe('resolveWorkloadApiAddress', () => {
  it('prefers the explicit address, which may be a bare path', () => {
    const env = { [ENDPOINT_SOCKET_ENV]: 'unix:///from/env.sock' };
    expect(resolveWorkloadApiAddress('/explicit.sock', env)).toMatchObject({ network: 'unix', path: '/explicit.sock' });
    expect(resolveWorkloadApiAddress('unix:/explicit.sock', env)).toMatchObject({ network: 'unix', path: '/explicit.sock' });
  });

  it('reads SPIFFE_ENDPOINT_SOCKET, which must be a URI', () => {
    expect(resolveWorkloadApiAddress(undefined, { [ENDPOINT_SOCKET_ENV]: 'unix:///from/env.sock' })).toMatchObject({ network: 'unix', path: '/from/env.sock' });
    expect(() => resolveWorkloadApiAddress(undefined, { [ENDPOINT_SOCKET_ENV]: '/from/env.sock' })).toThrow(
      'workloadapi: SPIFFE_ENDPOINT_SOCKET: address "/from/env.sock": is a path, not a URI; want unix:///path/to/socket or tcp://IP:port',
    );
  });

  it('says what to do when there is no address at all', () => {
    for (const env of [{}, { [ENDPOINT_SOCKET_ENV]: '' }]) {
      let caught: unknown;
      try {
        resolveWorkloadApiAddress(undefined, env);
      } catch (err) {
        caught = err;
      }
      expect(isAnchorageError(caught, 'invalid_argument')).toBe(true);
      expect((caught as Error).message).toBe(
        'workloadapi: no Workload API address: set SPIFFE_ENDPOINT_SOCKET (e.g. unix:///run/anchorage/agent.sock) or pass an address',
      );
    }
  });
});

describe('Backoff', () => {
  it('doubles from the initial delay up to the cap, and starts over after reset()', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000, 1000]);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it('spreads each delay over ±jitter', () => {
    expect(new Backoff({ initialMs: 1000, jitter: 0.2 }, () => 0).next()).toBe(800);
    expect(new Backoff({ initialMs: 1000, jitter: 0.2 }, () => 0.999999).next()).toBe(1200);
    // The cap holds even with jitter.
    const capped = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5 }, () => 0.999999);
    expect(capped.next()).toBe(1000);
  });

  it('defaults to 100 ms doubling to 30 s', () => {
    const b = new Backoff({ jitter: 0 });
    const delays = Array.from({ length: 12 }, () => b.next());
    expect(delays.slice(0, 3)).toEqual([100, 200, 400]);
    expect(delays.at(-1)).toBe(30_000);
  });

  it('refuses nonsensical options', () => {
    expect(() => new Backoff({ initialMs: 0 })).toThrow('backoff: initialMs must be a positive number');
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow('backoff: maxMs must be at least initialMs');
    expect(() => new Backoff({ multiplier: 0.5 })).toThrow('backoff: multiplier must be at least 1');
    expect(() => new Backoff({ jitter: 2 })).toThrow('backoff: jitter must be between 0 and 1');
  });
});
