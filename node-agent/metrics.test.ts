import { describe, expect, it } from 'vitest';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { makeRoot } from '../test/helpers/pki.js';
import type { NodeAgent } from './agent.js';
import { AgentMetrics, agentReadiness } from './metrics.js';

// Agent readiness: an unexpired agent SVID and a bundle of its trust domain
// with an unexpired X.509 authority. The agent here is the narrow view
// agentReadiness reads (its SVID's notAfter, its cache's bundle, its last
// sync), over real certificates.

const TD = TrustDomain.parse('agent-ready.test');
const NOW = Date.UTC(2026, 11, 5, 12, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();

function agent(svidNotAfter: number | undefined, bundle: SpiffeBundle | undefined, lastSyncMs?: number): NodeAgent {
  return {
    svidNotAfter,
    lastSyncMs,
    config: { trust_domain: TD },
    cache: { bundle: (name: string) => (name === TD.name ? bundle : undefined) },
  } as unknown as NodeAgent;
}

describe('agent readiness', async () => {
  const current = await makeRoot(TD.name, { notBefore: new Date(NOW - 86400_000), notAfter: new Date(NOW + 86400_000) });
  const expired = await makeRoot(TD.name, { notBefore: new Date(NOW - 2 * 86400_000), notAfter: new Date(NOW - 1000) });
  const bundle = (...ders: Uint8Array[]) => {
    const b = new SpiffeBundle(TD, { x509Authorities: ders });
    b.sequence = 7;
    return b;
  };
  const svid = NOW / 1000 + 1800;

  it('is ready with a valid SVID and a current authority, and says when it was last in sync', () => {
    expect(agentReadiness(agent(svid, bundle(expired.der, current.der), NOW - 5000), () => NOW)).toEqual({
      ok: true,
      lines: [
        `ok: agent SVID valid until ${iso(svid * 1000)}`,
        'ok: bundle of agent-ready.test (sequence 7) has 1 current X.509 authority',
        `info: last in sync with the server at ${iso(NOW - 5000)}`,
      ],
    });
  });

  it.each<[string, NodeAgent, string[]]>([
    ['no SVID', agent(undefined, bundle(current.der)), ['FAIL: no agent SVID (not attested yet)']],
    ['an expired SVID', agent(NOW / 1000 - 1, bundle(current.der)), [`FAIL: agent SVID expired at ${iso(NOW - 1000)}`]],
    ['no bundle', agent(svid, undefined), ['FAIL: no bundle of the trust domain yet']],
    ['only expired authorities', agent(svid, bundle(expired.der)), ['FAIL: every X.509 authority of the bundle has expired']],
  ])('is not ready with %s, and says so', (_n, a, fails) => {
    const report = agentReadiness(a, () => NOW);
    expect(report.ok).toBe(false);
    expect(report.lines.filter((l) => l.startsWith('FAIL'))).toEqual(fails);
    expect(report.lines.at(-1)).toBe('info: not synced with the server in this run');
  });
});

describe('agent metrics: server switches', () => {
  it('exports how many times the agent moved to another server', async () => {
    const metrics = new AgentMetrics();
    const fake = { serverSwitches: 3, config: { trust_domain: TD }, cache: { bundle: () => undefined, svids: () => [] } } as unknown as NodeAgent;
    metrics.attach(fake, () => NOW);
    expect(await metrics.registry.getSingleMetricAsString('anchorage_agent_server_switches_total')).toBe(
      [
        '# HELP anchorage_agent_server_switches_total Times the agent moved to another server of server_address because the one in use failed.',
        '# TYPE anchorage_agent_server_switches_total counter',
        'anchorage_agent_server_switches_total 3',
      ].join('\n'),
    );
  });
});
