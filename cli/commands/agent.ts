import type { Agent__Output } from '../../proto/gen/anchorage/admin/v1/Agent.js';
import { action, type CommandGroup, type Flags } from '../command.js';
import { esc, need, out, untilSignal, withAdmin } from '../args.js';

const iso = (t: number) => new Date(t * 1000).toISOString();

function agentText(a: Agent__Output): string {
  return (
    `Agent      : ${esc(a.spiffe_id)}\nAttested by: ${esc(a.attestation_type)}\nSVID       : serial ${esc(a.cert_serial)}, expires ${iso(a.cert_not_after)}\n` +
    `Evicted    : ${a.evicted}\nBanned     : ${a.banned}\n` +
    (a.last_seen_at
      ? `Last seen  : ${iso(a.last_seen_at)}\nBundle held: sequence ${a.bundle_sequence}\nClock skew : ${a.clock_skew_ms} ms (agent − server)\n`
      : 'Last seen  : never reported\n') +
    a.selectors.map((s) => `Selector   : ${esc(s.type)}:${esc(s.value)}\n`).join('')
  );
}

const SPIFFE_ID = { 'spiffe-id': { type: 'string', arg: 'ID', help: "the agent's SPIFFE ID" } } as const satisfies Flags;

export const command: CommandGroup = {
  name: 'agent',
  summary: 'Node agents: run one; list, show, evict, ban and unban those the server attests.',
  actions: {
    run: action({
      name: 'agent run',
      synopsis: '-c agent.yaml',
      summary: 'Runs a node agent and its Workload API until SIGINT or SIGTERM.',
      admin: false,
      flags: { config: { type: 'string', short: 'c', arg: 'FILE', help: 'the agent config (see the README)' } },
      async run(v) {
        const { loadAgentConfig } = await import('../../node-agent/config.js');
        const { createLogger } = await import('../../common/log.js');
        const cfg = loadAgentConfig(need(v.config, 'config'));
        const logger = createLogger('anchorage-agent', cfg.log_level, cfg.log_format);
        const { runAgent } = await import('../../node-agent/run.js');
        const running = await runAgent(cfg, { logger });
        await untilSignal(logger, 'agent', () => running.close());
      },
    }),
    list: action({
      name: 'agent list',
      synopsis: '',
      summary: 'Lists the attested agents.',
      flags: {},
      async run(v) {
        const res = await withAdmin(v, (a) => a.call('ListAgents', {}));
        out(v.json, res.agents, () => (res.agents.length === 0 ? 'No agents\n' : res.agents.map(agentText).join('\n')));
      },
    }),
    show: action({
      name: 'agent show',
      synopsis: '--spiffe-id ID',
      summary: 'Shows one agent.',
      flags: SPIFFE_ID,
      async run(v) {
        const spiffeId = need(v['spiffe-id'], 'spiffe-id');
        const agent = await withAdmin(v, (a) => a.call('GetAgent', { spiffe_id: spiffeId }));
        out(v.json, agent, () => agentText(agent));
      },
    }),
    ban: action({
      name: 'agent ban',
      synopsis: '--spiffe-id ID',
      summary:
        'Stops an agent ID from attesting again, and evicts its current SVID.\n' +
        'tpm and x509pop spend no secret, so an evicted agent of theirs attests again at once; a ban keeps it out.\n' +
        'The ID need not have attested yet.',
      flags: SPIFFE_ID,
      async run(v) {
        const spiffeId = need(v['spiffe-id'], 'spiffe-id');
        const res = await withAdmin(v, (a) => a.call('BanAgent', { spiffe_id: spiffeId }));
        out(v.json, res, () => `Banned ${esc(res.spiffe_id)}${res.evicted ? ' (its current SVID is evicted)' : ''}\n`);
      },
    }),
    unban: action({
      name: 'agent unban',
      synopsis: '--spiffe-id ID',
      summary: 'Lets a banned agent ID attest again.',
      flags: SPIFFE_ID,
      async run(v) {
        const spiffeId = need(v['spiffe-id'], 'spiffe-id');
        const res = await withAdmin(v, (a) => a.call('UnbanAgent', { spiffe_id: spiffeId }));
        out(v.json, res, () => `Unbanned ${esc(res.spiffe_id)}\n`);
      },
    }),
    evict: action({
      name: 'agent evict',
      synopsis: '--spiffe-id ID',
      summary: "Evicts an agent: its streams end and its calls are refused at once; it must attest again.",
      flags: SPIFFE_ID,
      async run(v) {
        const spiffeId = need(v['spiffe-id'], 'spiffe-id');
        const agent = await withAdmin(v, (a) => a.call('EvictAgent', { spiffe_id: spiffeId }));
        out(v.json, agent, () => `Evicted ${esc(agent.spiffe_id)}\n`);
      },
    }),
  },
};
