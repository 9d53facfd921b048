// A Workload API client run as a separate process (and often another uid)
// by server.test.ts. It makes one call and prints one JSON line: the first
// response, or the status it failed with. Plain JS so that it needs no
// TypeScript loader when run as an unprivileged user.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const opts = JSON.parse(process.argv[2]);
const here = dirname(fileURLToPath(import.meta.url));
const def = protoLoader.loadSync(join(here, '..', '..', 'packages', 'client', 'proto', 'spiffe', 'workload.proto'), {
  keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
});
const { SpiffeWorkloadAPI } = grpc.loadPackageDefinition(def);
const client = new SpiffeWorkloadAPI(`unix://${opts.socket}`, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
if (opts.header !== false) md.set('workload.spiffe.io', 'true');

const plain = (o) => JSON.parse(JSON.stringify(o, (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('base64') : v)));
const done = (out) => {
  process.stdout.write(JSON.stringify(out) + '\n');
  client.close();
  process.exit(0);
};
const fail = (err) => done({ ok: false, code: err.code, details: err.details });
const deadline = opts.hold ? {} : { deadline: Date.now() + 10_000 };

if (opts.method === 'FetchJWTSVID') {
  client.FetchJWTSVID({ audience: opts.audience ?? [], spiffe_id: opts.spiffeId ?? '' }, md, deadline, (err, res) =>
    err ? fail(err) : done({ ok: true, response: plain(res) }));
} else {
  const stream = client[opts.method]({}, md, deadline);
  if (opts.watch) {
    // Every message as a JSON line, until the test kills this process.
    stream.on('data', (res) => process.stdout.write(JSON.stringify({ ok: true, response: plain(res) }) + '\n'));
    stream.once('error', (err) => {
      process.stdout.write(JSON.stringify({ ok: false, code: err.code, details: err.details }) + '\n');
      process.exit(0);
    });
  } else stream.once('data', (res) => {
    if (opts.hold) {
      // Keep the stream open until the test kills this process.
      process.stdout.write(JSON.stringify({ ok: true, holding: true }) + '\n');
      return;
    }
    stream.removeAllListeners('error');
    stream.on('error', () => {});
    stream.cancel();
    done({ ok: true, response: plain(res) });
  });
  stream.once('error', fail);
}
