/**
 * The quickstart's demo workload: takes its identity from the Workload API
 * (SPIFFE_ENDPOINT_SOCKET) with the package's own client, and prints its
 * SPIFFE ID, certificate chain and expiry each time the agent rotates it.
 *
 *   SPIFFE_ENDPOINT_SOCKET=unix:///path/to/api.sock node dist/examples/demo-workload.js
 */
import { X509Source, type X509Svid } from '@anchorage/client';

function describe(svid: X509Svid): string {
  const lines = [`SPIFFE ID: ${svid.spiffeId.toString()}`];
  svid.chain.forEach((cert, i) => {
    const role = i === 0 ? 'leaf' : `intermediate ${i}`;
    lines.push(`  ${role.padEnd(14)} serial ${cert.serialNumber}  subject "${cert.subject.replace(/\n/g, ', ')}"  until ${new Date(cert.validTo).toISOString()}`);
  });
  const left = Math.round((svid.expiresAt.getTime() - Date.now()) / 1000);
  lines.push(`  expires ${svid.expiresAt.toISOString()} (in ${left} s)`);
  return lines.join('\n');
}

const source = await X509Source.create({ timeoutMs: 60_000 });
let last = '';
const show = () => {
  const svid = source.svid();
  const serial = svid.chain[0]!.serialNumber;
  if (serial === last) return;
  const what = last === '' ? 'identity' : 'rotated identity';
  last = serial;
  console.log(`[${new Date().toISOString()}] demo workload: ${what}\n${describe(svid)}`);
};
show();
source.on('update', show);
source.on('streamError', (err) => console.error(`demo workload: ${err.message} (retrying)`));
const stop = () => {
  void source.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
