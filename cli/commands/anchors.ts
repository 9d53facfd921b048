import type { TrustAnchor__Output } from '../../proto/gen/anchorage/admin/v1/TrustAnchor.js';
import { action, type CommandGroup } from '../command.js';
import { esc, out, withAdmin } from '../args.js';

const iso = (t: number) => (t ? new Date(t * 1000).toISOString() : 'unknown');

function anchorText(a: TrustAnchor__Output, agents: number): string {
  const lines = [
    `${a.federated ? 'Federated' : 'Own'} ${esc(a.kind)} of ${esc(a.trust_domain)}${a.status ? ` (${esc(a.status)})` : ''}`,
    a.kid ? `  Key ID      : ${esc(a.kid)}` : `  SHA-256     : ${esc(a.fingerprint)}`,
    ...(a.subject ? [`  Subject     : ${esc(a.subject)}`] : []),
    `  Valid       : ${a.not_before || a.not_after ? `${iso(a.not_before)} → ${iso(a.not_after)}` : 'not stated (JWT key)'}`,
    `  Source      : ${esc(a.source)}`,
    `  First seen  : ${iso(a.first_seen_at)}`,
    `  Held by     : ${a.agents_holding < 0 ? 'in no bundle (agents get it in SVID chains)' : `${a.agents_holding} of ${agents} agents`}`,
  ];
  return lines.join('\n') + '\n';
}

export const command: CommandGroup = {
  name: 'anchors',
  summary: 'The trust anchors the trust domain relies on.',
  actions: {
    list: action({
      name: 'anchors list',
      synopsis: '[--json]',
      summary:
        "Lists the own root(s), intermediates and JWT keys, and every federated trust domain's X.509 authorities\n" +
        'and JWT keys: fingerprint or key ID, subject, validity, source, when first seen, and how many agents hold it\n' +
        '(from the bundle sequence each agent last reported).',
      flags: {},
      async run(v) {
        const res = await withAdmin(v, (a) => a.call('ListTrustAnchors', {}));
        out(v.json, res, () => (res.anchors.length === 0 ? 'No trust anchors\n' : res.anchors.map((a) => anchorText(a, res.agents)).join('\n')));
      },
    }),
  },
};
