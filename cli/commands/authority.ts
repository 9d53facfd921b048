import type { Authority__Output } from '../../proto/gen/anchorage/admin/v1/Authority.js';
import type { AuthorityChange__Output } from '../../proto/gen/anchorage/admin/v1/AuthorityChange.js';
import type { LaggingAgent__Output } from '../../proto/gen/anchorage/admin/v1/LaggingAgent.js';
import { action, type Action, type CommandGroup, type Flags } from '../command.js';
import { esc, out, withAdmin } from '../args.js';

type Kind = 'x509' | 'jwt' | 'root';

const iso = (t: number) => (t ? new Date(t * 1000).toISOString() : 'never');

const NOUN: Record<Kind, string> = { x509: 'X.509 authority (intermediate)', jwt: 'JWT key', root: 'root' };

function authorityText(a: Authority__Output, agents?: number): string {
  const state = [a.status, ...(a.tainted ? [`tainted ${iso(a.tainted_at)}`] : []), ...(a.revoked ? [`revoked ${iso(a.revoked_at)}`] : [])].join(', ');
  const lines = [
    `${esc(a.kind)} ${esc(a.id)} (${esc(state)})`,
    a.kid ? `  Key ID      : ${esc(a.kid)}` : `  SHA-256     : ${esc(a.fingerprint)}`,
    ...(a.subject ? [`  Subject     : ${esc(a.subject)}`] : []),
    ...(a.issuer_id ? [`  Root        : ${esc(a.issuer_id)}`] : []),
    ...(a.server_id ? [`  Server      : ${esc(a.server_id)}`] : []),
    `  Valid       : ${iso(a.not_before)} → ${iso(a.not_after)}`,
    ...(a.key_id ? [`  Key         : ${esc(a.key_id)}`] : []),
    ...(a.kind === 'x509'
      ? []
      : [
          `  Published   : ${a.published_sequence ? `bundle sequence ${a.published_sequence}` : 'not yet'}${
            agents === undefined || a.revoked ? '' : `, held by ${a.agents_holding} of ${agents} agents`
          }`,
        ]),
  ];
  return lines.join('\n') + '\n';
}

function laggingText(l: LaggingAgent__Output[]): string {
  return l.map((a) => `  ${esc(a.spiffe_id)}  holds ${a.bundle_sequence ? `sequence ${a.bundle_sequence}` : 'nothing reported'}, last seen ${iso(a.last_seen_at)}`).join('\n');
}

function changeText(c: AuthorityChange__Output): string {
  const parts = [`${esc(c.message)}\n`, authorityText(c.authority!)];
  for (const a of c.also) parts.push(authorityText(a));
  if (c.lost_trust.length > 0) parts.push(`Agents that lose trust until their next sync (--force):\n${laggingText(c.lost_trust)}\n`);
  return parts.join('\n');
}

const ID = { id: { type: 'string', arg: 'ID', help: 'the authority (see list)' } } as const satisfies Flags;
const FORCE = { force: { type: 'boolean', help: 'go on although agents have not acknowledged the bundle the step relies on' } } as const satisfies Flags;

type Method = 'PrepareAuthority' | 'ActivateAuthority' | 'TaintAuthority' | 'RevokeAuthority';

function step(kind: Kind, word: string, method: Method, synopsis: string, summary: string, flags: Flags): Action {
  return action({
    name: `authority ${kind} ${word}`,
    synopsis,
    summary,
    flags,
    async run(v) {
      const req = { kind, id: typeof v.id === 'string' ? v.id : '', force: v.force === true };
      const res = await withAdmin(v, (a) => a.call(method, req));
      out(v.json, res, () => changeText(res));
    },
  });
}

function group(kind: Kind): CommandGroup {
  const noun = NOUN[kind];
  const actions: Record<string, Action> = {
    list: action({
      name: `authority ${kind} list`,
      synopsis: '[--json]',
      summary:
        `Lists every ${noun}: status (prepared, active, old), tainted, revoked, fingerprint or key ID, validity` +
        (kind === 'x509' ? ', and the root it chains to.' : ',\nthe bundle sequence that first held it, how many agents hold it, and which agents lag.'),
      flags: {},
      async run(v) {
        const res = await withAdmin(v, (a) => a.call('ListAuthorities', { kind }));
        out(v.json, res, () => {
          const body = res.authorities.length === 0 ? `No ${noun}s\n` : res.authorities.map((a) => authorityText(a, res.agents)).join('\n');
          const lag =
            kind === 'x509'
              ? ''
              : res.lagging.length === 0
                ? `\nAll ${res.agents} agents hold the current bundle's ${kind === 'root' ? 'roots' : 'keys'} (sequence ${res.bundle_sequence}).\n`
                : `\n${res.lagging.length} of ${res.agents} agents lag (bundle sequence ${res.bundle_sequence}):\n${laggingText(res.lagging)}\n`;
          return body + lag;
        });
      },
    }),
    prepare: step(
      kind,
      'prepare',
      'PrepareAuthority',
      '',
      kind === 'x509'
        ? 'Makes a new intermediate in the HSM, signed by the active root. It signs nothing until activated.'
        : kind === 'jwt'
          ? 'Makes a new JWT key in the HSM and publishes it in the bundle. It signs nothing until activated.'
          : 'Makes a new self-signed root in the HSM and publishes it in the bundle beside the current one.',
      {},
    ),
    activate: step(
      kind,
      'activate',
      'ActivateAuthority',
      kind === 'root' ? '[--id ID] [--force]' : '[--id ID]',
      kind === 'root'
        ? 'New intermediates chain to it (default: the prepared root). Refused until every agent holds a bundle with it,\nunless --force.'
        : `New SVIDs are signed by it (default: the prepared one); the active one becomes old, still trusted.`,
      kind === 'root' ? { ...ID, ...FORCE } : ID,
    ),
    revoke: step(
      kind,
      'revoke',
      'RevokeAuthority',
      kind === 'jwt' ? '--id ID' : '--id ID [--force]',
      kind === 'jwt'
        ? 'Removes a tainted, inactive JWT key from the bundle and destroys it: JWT-SVIDs it signed no longer validate.'
        : kind === 'x509'
          ? 'Withdraws a tainted, inactive intermediate from trust by removing the root that signed it from the bundle\n' +
            '(with any other tainted intermediate of that root). Refused while that root is active or signs an untainted\n' +
            'intermediate, or while agents lack the roots that stay (unless --force).'
          : 'Removes an inactive root and its intermediates (all tainted) from the bundle and destroys their keys.\n' +
            'Refused until every agent holds a bundle with the roots that stay, unless --force (which names who loses trust).',
      kind === 'jwt' ? ID : { ...ID, ...FORCE },
    ),
  };
  if (kind !== 'root') {
    actions.taint = step(
      kind,
      'taint',
      'TaintAuthority',
      '[--id ID]',
      `Keeps it trusted but makes every agent ${kind === 'x509' ? 're-mint at once every X509-SVID (workload and agent) it signed' : 'drop every cached JWT-SVID it signed'}.\n` +
        'Default: the active one, which is first replaced by the prepared one or a new one.',
      ID,
    );
  }
  return { name: `authority ${kind}`, summary: `${noun[0]!.toUpperCase()}${noun.slice(1)}s: list, prepare, activate${kind === 'root' ? '' : ', taint'}, revoke.`, actions };
}

export const command: CommandGroup = {
  name: 'authority',
  summary:
    "The CA's authorities ahead of their schedule: intermediates (x509), JWT keys (jwt) and roots (root).\n" +
    'A suspected compromise: taint (agents re-mint at once), then revoke (out of the bundle).',
  actions: {},
  groups: { x509: group('x509'), jwt: group('jwt'), root: group('root') },
};
