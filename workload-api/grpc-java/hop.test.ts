import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { SocketHop } from './hop.js';

/** A Duplex whose readable side is `toServer` and whose writes land in `fromServer`. */
function duplexPair(): { stream: Duplex; toServer: PassThrough; fromServer: Buffer[] } {
  const toServer = new PassThrough();
  const fromServer: Buffer[] = [];
  const stream = new Duplex({
    read() {
      toServer.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      fromServer.push(chunk);
      cb();
    },
  });
  toServer.on('data', (c: Buffer) => {
    if (!stream.push(c)) toServer.pause();
  });
  toServer.on('end', () => stream.push(null));
  return { stream, toServer, fromServer };
}

function read(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const on = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length >= n) {
        socket.off('data', on);
        resolve(got);
      }
    };
    socket.on('data', on);
    socket.resume();
  });
}

describe('SocketHop', () => {
  let hop: SocketHop | undefined;
  afterEach(async () => {
    await hop?.close();
    hop = undefined;
  });

  it('carries a stream to a real socket, both ways, and closes both together', async () => {
    hop = await SocketHop.open();
    const { stream, toServer, fromServer } = duplexPair();
    const serverEnd = await new Promise<Socket>((resolve) => hop!.carry(stream, resolve));
    toServer.write('hello server');
    expect((await read(serverEnd, 12)).toString()).toBe('hello server');
    serverEnd.write('hello client');
    await new Promise((r) => setTimeout(r, 50));
    expect(Buffer.concat(fromServer).toString()).toBe('hello client');
    const closed = new Promise((r) => stream.once('close', r));
    serverEnd.destroy();
    await closed;
    expect(stream.destroyed).toBe(true);
  });

  it('drops a connection that does not name a pending token', async () => {
    hop = await SocketHop.open();
    // Abstract sockets are listed in /proc/net/unix (as "@name"): anyone on the host can find and dial it.
    const listed = readFileSync('/proc/net/unix', 'utf8')
      .split('\n')
      .map((l) => l.trim().split(/\s+/).pop() ?? '')
      .find((name) => name.startsWith('@anchorage-workload-api-hop-'));
    expect(listed).toBeDefined();
    // NUL bytes (Node pads the abstract name) are shown as "@".
    const stranger = connect(listed!.replace(/@/g, '\0'));
    await new Promise<void>((resolve, reject) => {
      stranger.once('connect', resolve);
      stranger.once('error', reject);
    });
    stranger.write(Buffer.alloc(16, 7));
    const closed = await new Promise<boolean>((resolve) => {
      stranger.once('close', () => resolve(true));
      setTimeout(() => resolve(false), 3000).unref();
    });
    expect(closed).toBe(true);
  });

  it('close() ends carried connections', async () => {
    hop = await SocketHop.open();
    const { stream } = duplexPair();
    const serverEnd = await new Promise<Socket>((resolve) => hop!.carry(stream, resolve));
    const ended = new Promise((r) => serverEnd.once('close', r));
    await hop.close();
    hop = undefined;
    await ended;
    expect(serverEnd.destroyed).toBe(true);
  });
});
