// The simulated agents of `bench scale` (bench/scale.ts), in a child process
// of their own so the server's RSS is measured without them. Each agent is a
// lightweight agent-API client that really attests (a join token and
// AttestAgent with a CSR), then syncs over mutual TLS with its own SVID and
// keeps its authorized entries as the node agent does (passes assembled by
// node-agent/agent/sync.ts's SyncAssembler). It mints nothing.
//
// Messages from the parent: start {port, td, rootPem, tokens}; expect {phase,
// what}. To the parent: ready {agentIds, attestMs}; reached {phase, atMs,
// …}; stats; error.
import * as grpc from '@grpc/grpc-js';
import { runAttestation } from '../node-agent/connection.js';
import { SyncAssembler } from '../node-agent/agent/sync.js';
import { loadAgentProto } from '../proto/load.js';
import type { AgentClient } from '../proto/gen/anchorage/agent/v1/Agent.js';
import type { SyncAuthorizedEntriesResponse__Output } from '../proto/gen/anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';
import { keyAndCsr } from '../test/helpers/csr.js';
import { agentApiClient } from '../test/helpers/agent-api.js';

export type Expectation =
  | { kind: 'count'; n: number } // every agent holds at least n entries
  | { kind: 'hint'; hint: string } // every agent holds an entry with this hint
  | { kind: 'federated'; trustDomain: string }; // every agent holds this federated bundle

export type ToAgents = { type: 'start'; port: number; td: string; rootPem: string; tokens: string[] } | { type: 'expect'; phase: string; what: Expectation } | { type: 'stats' };

export type FromAgents =
  | { type: 'ready'; agentIds: string[]; attestMs: number }
  | { type: 'reached'; phase: string; atMs: number }
  | { type: 'stats'; rssBytes: number; messages: number; passes: number; multiMessagePasses: number; largestMessageBytes: number; streamErrors: number }
  | { type: 'error'; message: string };

interface SimAgent {
  id: string;
  client: AgentClient;
  /** Entry ID -> hint. */
  entries: Map<string, string>;
  federated: Set<string>;
  /** Date.now() of the last pass applied. */
  lastPassAt: number;
}

const method = loadAgentProto().anchorage.agent.v1.Agent.service.SyncAuthorizedEntries;
const agents: SimAgent[] = [];
let messages = 0;
let passes = 0;
let multiMessagePasses = 0;
let largest = 0;
let streamErrors = 0;
let waiting: { phase: string; what: Expectation; left: Set<SimAgent>; lastAt: number } | undefined;

function send(m: FromAgents): void {
  process.send!(m);
}

function satisfied(a: SimAgent, what: Expectation): boolean {
  if (a.lastPassAt === 0) return false; // not synced yet
  switch (what.kind) {
    case 'count':
      return a.entries.size >= what.n;
    case 'hint':
      for (const h of a.entries.values()) if (h === what.hint) return true;
      return false;
    case 'federated':
      return a.federated.has(what.trustDomain);
  }
}

function check(a: SimAgent): void {
  const w = waiting;
  if (!w || !w.left.has(a) || !satisfied(a, w.what)) return;
  w.left.delete(a);
  w.lastAt = Math.max(w.lastAt, a.lastPassAt);
  if (w.left.size === 0) {
    waiting = undefined;
    send({ type: 'reached', phase: w.phase, atMs: w.lastAt });
  }
}

function apply(a: SimAgent, m: SyncAuthorizedEntriesResponse__Output, parts: number): void {
  passes++;
  if (parts > 1) multiMessagePasses++;
  if (m.full) a.entries.clear();
  for (const id of m.removed_entry_ids) a.entries.delete(id);
  for (const e of m.entries) a.entries.set(e.id, e.hint);
  // The bundles are in the first message of every pass.
  a.federated = new Set(Object.keys(m.federated_bundles));
  a.lastPassAt = Date.now();
  check(a);
}

/** Opens the agent's sync stream; resolves at its first message or failure. A failed stream is opened again after a second, as the agent does. */
function openStream(a: SimAgent): Promise<void> {
  return new Promise((opened) => {
    const assembler = new SyncAssembler();
    let parts = 0;
    const call = a.client.makeServerStreamRequest(
      method.path,
      method.requestSerialize,
      (buf: Buffer) => {
        messages++;
        if (buf.length > largest) largest = buf.length;
        return method.responseDeserialize(buf);
      },
      {},
    );
    call.on('data', (m: SyncAuthorizedEntriesResponse__Output) => {
      opened();
      parts++;
      const pass = assembler.add(m);
      if (pass) {
        apply(a, pass, parts);
        parts = 0;
      }
    });
    call.on('error', (e: grpc.ServiceError) => {
      opened();
      if (e.code === grpc.status.CANCELLED) return;
      streamErrors++;
      if (streamErrors <= 5) send({ type: 'error', message: `agent ${a.id}: sync stream ended (opened again in 1 s): ${e.code} ${e.details}` });
      setTimeout(() => void openStream(a), 1000);
    });
  });
}

async function start(port: number, td: string, rootPem: Buffer, tokens: string[]): Promise<void> {
  const anon = agentApiClient({ port, trustDomain: td, rootPem });
  const t0 = performance.now();
  const attested: Array<{ id: string; keyPem: string; chain: Uint8Array[] }> = new Array(tokens.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < tokens.length) {
        const i = next++;
        const { csr, keyPem } = keyAndCsr();
        const res = await runAttestation(anon.AttestAgent(), {
          type: 'join_token',
          payload: Buffer.from(tokens[i]!),
          csr,
          respond: () => Promise.reject(new Error('join_token has no challenge')),
        });
        attested[i] = { id: res.spiffe_id, keyPem, chain: res.svid_chain };
      }
    }),
  );
  const attestMs = performance.now() - t0;
  anon.close();
  for (const { id, keyPem, chain } of attested) {
    agents.push({ id, client: agentApiClient({ port, trustDomain: td, rootPem, identity: { keyPem, chain } }), entries: new Map(), federated: new Set(), lastPassAt: 0 });
  }
  // Streams open 32 at a time (each TLS handshake and first pass), as agents starting over some seconds would.
  let at = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (at < agents.length) await openStream(agents[at++]!);
    }),
  );
  send({ type: 'ready', agentIds: attested.map((a) => a.id), attestMs });
}

process.on('message', (m: ToAgents) => {
  if (m.type === 'start') {
    start(m.port, m.td, Buffer.from(m.rootPem), m.tokens).catch((err: unknown) => send({ type: 'error', message: `attestation failed: ${String(err)}` }));
  } else if (m.type === 'expect') {
    waiting = { phase: m.phase, what: m.what, left: new Set(agents), lastAt: 0 };
    for (const a of agents) check(a);
  } else if (m.type === 'stats') {
    send({ type: 'stats', rssBytes: process.memoryUsage().rss, messages, passes, multiMessagePasses, largestMessageBytes: largest, streamErrors });
  }
});
process.on('disconnect', () => process.exit(0));
