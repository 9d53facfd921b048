// The server's TCP listeners under a flood of half-open connections (issue 10,
// item 7): the agent API and the bundle endpoint used to hold a connection that
// never sends a ClientHello for Node's default 120 s, with no cap, so enough of
// them took the server's file descriptors and stopped every API.
//
// Against a real `anchorage server run` with short limits, from loopback
// addresses of their own (all of 127/8 is loopback on Linux, so the attacker
// and the honest client are different "remote IPs"):
//   - connections beyond max_connections_per_ip / max_connections are closed
//     at once, while the admitted ones are still open;
//   - the admitted ones are closed by the server after handshake_timeout;
//   - meanwhile the admin socket answers, a TLS client completes a handshake
//     with the agent API, and the bundle endpoint serves the bundle.
import { get } from 'node:https';
import { connect as tcpConnect, createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliAsync, freePort, startServerProcess, tempDir, type ServerProcess } from '../helpers/process.js';
import { createSoftHsmToken, type SoftHsmToken, writePkcs11ServerConfig } from '../helpers/softhsm.js';
import { until } from '../helpers/until.js';

const TD = 'listeners.example';
const ATTACKER = '127.0.0.2';
const ATTACKER_2 = '127.0.0.3';
const HONEST = '127.0.0.1';
const TRICKLER = '127.0.0.4';

/** A TCP connection that never sends a byte; `closedAt` is set when the server closes it. */
interface HalfOpen {
  socket: Socket;
  openedAt: number;
  closedAt?: number;
}

function openHalfOpen(port: number, from: string, count: number): Promise<HalfOpen[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<HalfOpen>((resolve, reject) => {
          const socket = tcpConnect({ host: '127.0.0.1', port, localAddress: from });
          const h: HalfOpen = { socket, openedAt: 0 };
          socket.on('error', () => {
            /* ECONNRESET from a refused connection is expected */
          });
          socket.once('close', () => (h.closedAt = Date.now()));
          socket.once('connect', () => {
            h.openedAt = Date.now();
            resolve(h);
          });
          setTimeout(() => reject(new Error('tcp connect did not complete in 10 s')), 10_000).unref();
        }),
    ),
  );
}

const closed = (conns: HalfOpen[]) => conns.filter((c) => c.closedAt !== undefined).length;

/** Polls `cond` every 50 ms until it holds; fails after `ms`. */

describe('server TCP listeners under a half-open connection flood (real server)', () => {
  let token: SoftHsmToken;
  let tmp: { dir: string; cleanup: () => void };
  let server: ServerProcess;
  let socket: string;
  let env: NodeJS.ProcessEnv;
  let agentPort: number;
  let bundlePort: number;
  let rootPem: string;
  const all: HalfOpen[] = [];

  beforeAll(async () => {
    token = createSoftHsmToken('anchorage-listeners', '1122');
    tmp = tempDir('anchorage-listeners-');
    env = { ...token.env };
    socket = join(tmp.dir, 'admin.sock');
    agentPort = await freePort();
    bundlePort = await freePort();
    const config = writePkcs11ServerConfig(token, { dir: tmp.dir, trustDomain: TD, socket, port: agentPort, extra: `agent_api:
  handshake_timeout: 8s
  max_connections: 300
  max_connections_per_ip: 250
federation:
  bundle_endpoint:
    address: 127.0.0.1:${bundlePort}
    profile: https_spiffe
    handshake_timeout: 8s
    max_connections: 200
    max_connections_per_ip: 150
` });
    server = await startServerProcess(config, socket, env);
    const bundle = cli(['bundle', 'show', '--format', 'pem', '--socket', socket], env);
    expect(bundle.code, bundle.stderr).toBe(0);
    rootPem = bundle.stdout;
  });

  afterAll(async () => {
    for (const c of all) c.socket.destroy();
    await server?.kill('SIGTERM');
    tmp?.cleanup();
    token?.cleanup();
  });

  /** A full TLS handshake with the agent API from `from`, verifying the server against the trust bundle. */
  const agentHandshake = (from: string) =>
    new Promise<string>((resolve) => {
      const s = tlsConnect({
        socket: tcpConnect({ host: '127.0.0.1', port: agentPort, localAddress: from }),
        ALPNProtocols: ['h2'],
        ca: rootPem,
        // The server's certificate names a SPIFFE ID, not a host name.
        checkServerIdentity: () => undefined,
      });
      s.once('secureConnect', () => {
        const result = s.authorized ? `handshake ok, alpn ${String(s.alpnProtocol)}` : `unauthorized: ${String(s.authorizationError)}`;
        s.destroy();
        resolve(result);
      });
      // Refused: closed before the handshake, seen as a reset or a plain close
      // depending on whether our ClientHello was already on its way.
      s.once('error', () => resolve('refused before the handshake'));
      s.once('close', () => resolve('refused before the handshake'));
    });

  /** GET / on the bundle endpoint from 127.0.0.1: the status and the trust domain's key count. */
  const fetchBundle = () =>
    new Promise<string>((resolve) => {
      const req = get(
        { host: '127.0.0.1', port: bundlePort, path: '/', localAddress: HONEST, ca: rootPem, checkServerIdentity: () => undefined, agent: false },
        (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => {
            const doc = JSON.parse(body) as { keys: { use: string }[] };
            resolve(`${res.statusCode} ${doc.keys.some((k) => k.use === 'x509-svid') ? 'with' : 'without'} an x509 authority`);
          });
        },
      );
      req.on('error', (e) => resolve(`error: ${e.message}`));
    });

  const adminAnswers = async () => {
    const r = await cliAsync(['entry', 'list', '--socket', socket], env);
    return `${r.code} ${r.stdout.trim()}${r.stderr.trim()}`;
  };

  it('closes connections beyond the caps at once and the rest after the handshake timeout, serving honest clients throughout', async () => {
    // Per-address caps: 400 to the agent API (cap 250 from one address), 300 to the bundle endpoint (cap 150).
    const agentFlood = await openHalfOpen(agentPort, ATTACKER, 400);
    const bundleFlood = await openHalfOpen(bundlePort, ATTACKER, 300);
    all.push(...agentFlood, ...bundleFlood);
    await until('the connections beyond the per-address caps to be closed', () => closed(agentFlood) >= 150 && closed(bundleFlood) >= 150, 20_000, 50);
    // Exactly those: the admitted ones are still waiting for their handshake timeout.
    expect([closed(agentFlood), closed(bundleFlood)]).toEqual([150, 150]);

    // Honest clients on another address are served while the attacker holds its share.
    expect(await agentHandshake(HONEST)).toBe('handshake ok, alpn h2');
    expect(await fetchBundle()).toBe('200 with an x509 authority');
    expect(await adminAnswers()).toBe('0 No entries');

    // The global cap: a second address gets only what is left of the 300.
    const agentFlood2 = await openHalfOpen(agentPort, ATTACKER_2, 100);
    all.push(...agentFlood2);
    await until('the connections beyond max_connections to be closed', () => closed(agentFlood2) >= 50, 20_000, 50);
    expect(closed(agentFlood2)).toBe(50);
    // Whoever comes now is refused on the agent API; the admin socket is untouched.
    expect(await agentHandshake(HONEST)).toBe('refused before the handshake');
    expect(await adminAnswers()).toBe('0 No entries');

    // The handshake timeout (8 s here, long enough that the steps above finish
    // on a loaded machine before it strikes; Node's default was 120 s) frees every slot.
    await until('every half-open connection to be closed by the server', () => all.every((c) => c.closedAt !== undefined), 30_000, 50);
    const heldMs = all.map((c) => c.closedAt! - c.openedAt).sort((a, b) => b - a);
    // The admitted ones were held until the timeout, not dropped on arrival.
    expect(heldMs.filter((ms) => ms >= 7_000).length).toBe(250 + 150 + 50);
    expect(server.log()).toContain('agent api: connection limit reached; closing new connections');
    expect(server.log()).toContain('federation: bundle endpoint: connection limit reached; closing new connections');

    // And the listeners serve normally again.
    expect(await agentHandshake(HONEST)).toBe('handshake ok, alpn h2');
    expect(await fetchBundle()).toBe('200 with an x509 authority');
  });

  it('closes a connection that trickles its ClientHello a byte at a time after the handshake timeout', async () => {
    // Independent of the test above, even if it failed half-way: its
    // connections go, and both listeners answer before the trickling starts.
    for (const c of all) c.socket.destroy();
    const serving = 'handshake ok, alpn h2 / 200 with an x509 authority';
    let last = '';
    for (let i = 0; i < 60 && last !== serving; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 250));
      last = `${await agentHandshake(HONEST)} / ${await fetchBundle()}`;
    }
    expect(last).toBe(serving);
    // A real ClientHello, sent one byte every 150 ms: activity that must not
    // keep the connection alive past handshake_timeout (8 s here).
    const hello = await new Promise<Buffer>((resolve) => {
      const sink = createServer((s) =>
        s.once('data', (d: Buffer) => {
          s.destroy();
          sink.close();
          resolve(d);
        }),
      );
      sink.listen(0, '127.0.0.1', () => {
        const t = tlsConnect({ host: '127.0.0.1', port: (sink.address() as { port: number }).port, rejectUnauthorized: false });
        t.on('error', () => undefined);
      });
    });
    expect(hello.length).toBeGreaterThan(150); // 30 s of trickling would not finish it
    const trickle = async (port: number) => {
      const [c] = await openHalfOpen(port, TRICKLER, 1);
      let sent = 0;
      const timer = setInterval(() => {
        if (c!.closedAt === undefined && sent < hello.length) c!.socket.write(hello.subarray(sent, ++sent));
      }, 150);
      try {
        await until('the server to close the trickling connection', () => c!.closedAt !== undefined, 30_000, 50);
      } finally {
        clearInterval(timer);
      }
      return { sent, heldMs: c!.closedAt! - c!.openedAt };
    };
    for (const { sent, heldMs } of await Promise.all([trickle(agentPort), trickle(bundlePort)])) {
      expect(sent).toBeLessThan(hello.length);
      expect(heldMs).toBeGreaterThanOrEqual(7_000);
    }
  });
});
