import { errorMessage, invalid } from '@anchorage/client/errors';
import { SpiffeBundle, X509Bundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import type { FederationRelationship__Output } from '../../proto/gen/anchorage/admin/v1/FederationRelationship.js';
import { action, type AdminValues, type CommandGroup, type Flags, type Values } from '../command.js';
import { esc, need, out, readInput, UsageError, withAdmin } from '../args.js';

/**
 * `anchorage federation create|update|list|show|refresh|delete`: federation
 * relationships, whose peer bundles the server fetches from the peer's bundle
 * endpoint (ca/federation/client.ts).
 */

const TRUST_DOMAIN = { 'trust-domain': { type: 'string', arg: 'TD', help: 'the peer trust domain' } } as const satisfies Flags;

const RELATIONSHIP_FLAGS = {
  ...TRUST_DOMAIN,
  url: { type: 'string', arg: 'URL', help: "the peer's bundle endpoint (https://…)" },
  profile: { type: 'string', arg: 'P', help: 'https_spiffe (the endpoint shows an SVID of TD) or https_web (Web PKI)' },
  'endpoint-id': { type: 'string', arg: 'ID', help: "https_spiffe: the SPIFFE ID of the endpoint's SVID" },
  'bootstrap-bundle': { type: 'string', arg: 'F', help: "https_spiffe: TD's bundle to trust first (a SPIFFE bundle document or PEM)" },
  'ca-file': { type: 'string', arg: 'F', help: 'https_web: CA certificates (PEM) instead of the system roots' },
} as const satisfies Flags;

const PROFILES = ['https_spiffe', 'https_web'];

/**
 * A bootstrap bundle file as a SPIFFE bundle document: either that already
 * (JSON), or PEM certificates (e.g. from `anchorage bundle show` at the peer),
 * which become its X.509 authorities.
 */
function bootstrapDocument(file: string, trustDomain: string): string {
  const text = readInput(file);
  if (!text.trimStart().startsWith('-----BEGIN')) return text;
  let td: TrustDomain;
  try {
    td = TrustDomain.parse(trustDomain);
  } catch (err) {
    throw invalid(`--trust-domain: ${errorMessage(err)}`);
  }
  let x509: X509Bundle;
  try {
    x509 = X509Bundle.parsePem(td, text);
  } catch (err) {
    throw invalid(`${file}: ${errorMessage(err)}`);
  }
  return new SpiffeBundle(td, { x509Authorities: x509.authorities() }).marshal();
}

function relationshipText(r: FederationRelationship__Output): string {
  const iso = (t: number) => (t ? new Date(t * 1000).toISOString() : 'never');
  const lines = [
    `Trust domain : ${esc(r.trust_domain)}`,
    `Endpoint URL : ${esc(r.bundle_endpoint_url)}`,
    `Profile      : ${esc(r.profile)}`,
    ...(r.profile === 'https_spiffe' ? [`Endpoint ID  : ${esc(r.endpoint_spiffe_id)}`] : [`CA           : ${r.web_ca_pem ? 'given (PEM)' : 'system roots'}`]),
    `Last refresh : ${iso(r.last_success_at)}`,
    `Last attempt : ${iso(r.last_attempt_at)}`,
    `Last error   : ${r.last_error ? `${esc(r.last_error_reason)}: ${esc(r.last_error)} (${iso(r.last_error_at)}, ${r.consecutive_failures} in a row)` : 'none'}`,
    `Next refresh : ${iso(r.next_refresh_at)}`,
  ];
  if (r.bundle) {
    lines.push(`Bundle       : sequence ${r.bundle.sequence}, refresh hint ${r.bundle.refresh_hint}s, stored ${iso(r.bundle.updated_at)}`);
    for (const k of r.bundle.keys) lines.push(`Key          : ${esc(k.use)} ${esc(k.id)}${k.not_after ? `, expires ${iso(k.not_after)}` : ''}`);
  } else {
    lines.push('Bundle       : none held');
  }
  return `${lines.join('\n')}\n`;
}

/** `federation create` and `update`: flags given replace the old values. */
async function createOrUpdate(sub: 'create' | 'update', v: Values<typeof RELATIONSHIP_FLAGS> & AdminValues): Promise<void> {
  const trustDomain = need(v['trust-domain'], 'trust-domain');
  if (v.profile !== undefined && !PROFILES.includes(v.profile)) throw new UsageError(`--profile must be https_spiffe or https_web, not "${v.profile}"`);
  const bootstrap = v['bootstrap-bundle'] === undefined ? '' : bootstrapDocument(v['bootstrap-bundle'], trustDomain);
  const caPem = v['ca-file'] === undefined ? undefined : readInput(v['ca-file']);
  const r = await withAdmin(v, async (a) => {
    if (sub === 'create') {
      const profile = need(v.profile, 'profile');
      return a.call('CreateFederationRelationship', {
        relationship: {
          trust_domain: trustDomain,
          bundle_endpoint_url: need(v.url, 'url'),
          profile,
          endpoint_spiffe_id: v['endpoint-id'] ?? '',
          web_ca_pem: caPem ?? '',
        },
        bootstrap_bundle: bootstrap,
      });
    }
    // Flags not given keep their values; a profile change drops what belonged to the old one.
    const old = await a.call('GetFederationRelationship', { trust_domain: trustDomain });
    const profile = v.profile ?? old.profile;
    const same = profile === old.profile;
    return a.call('UpdateFederationRelationship', {
      relationship: {
        trust_domain: trustDomain,
        bundle_endpoint_url: v.url ?? old.bundle_endpoint_url,
        profile,
        endpoint_spiffe_id: v['endpoint-id'] ?? (same ? old.endpoint_spiffe_id : ''),
        web_ca_pem: caPem ?? (same ? old.web_ca_pem : ''),
      },
      bootstrap_bundle: bootstrap,
    });
  });
  out(v.json, r, () => relationshipText(r));
}

/** `federation show`, `refresh` and `delete`: one relationship by trust domain. */
function byTrustDomain(sub: 'show' | 'refresh' | 'delete', summary: string) {
  const rpc = sub === 'show' ? 'GetFederationRelationship' : sub === 'refresh' ? 'RefreshFederationRelationship' : 'DeleteFederationRelationship';
  return action({
    name: `federation ${sub}`,
    synopsis: '--trust-domain TD',
    summary,
    flags: TRUST_DOMAIN,
    async run(v) {
      const trust_domain = need(v['trust-domain'], 'trust-domain');
      const r = await withAdmin(v, (a) => a.call(rpc, { trust_domain }));
      out(v.json, r, () => (sub === 'delete' ? `Deleted the federation relationship with ${esc(r.trust_domain)} and its bundle\n` : relationshipText(r)));
    },
  });
}

export const command: CommandGroup = {
  name: 'federation',
  summary: "Federation relationships: the server fetches each peer trust domain's bundle from its bundle endpoint.",
  actions: {
    create: action({
      name: 'federation create',
      synopsis: '--trust-domain TD --url URL --profile https_spiffe|https_web [flags]',
      summary:
        "Starts fetching TD's bundle from URL. https_spiffe authenticates the endpoint's SVID (--endpoint-id)\nwith TD's bundle, at first the bootstrap bundle; https_web uses the system roots or --ca-file.",
      flags: RELATIONSHIP_FLAGS,
      run: (v) => createOrUpdate('create', v),
    }),
    update: action({
      name: 'federation update',
      synopsis: '--trust-domain TD [flags of create]',
      summary: 'Changes a relationship: flags given replace the old values; --bootstrap-bundle replaces the held bundle.',
      flags: RELATIONSHIP_FLAGS,
      run: (v) => createOrUpdate('update', v),
    }),
    list: action({
      name: 'federation list',
      synopsis: '',
      summary: 'Lists relationships with their last refresh, last error, next refresh and held bundle.',
      flags: {},
      async run(v) {
        const res = await withAdmin(v, (a) => a.call('ListFederationRelationships', {}));
        out(v.json, res.relationships, () =>
          res.relationships.length === 0 ? 'No federation relationships\n' : res.relationships.map(relationshipText).join('\n'),
        );
      },
    }),
    show: byTrustDomain('show', 'Shows one relationship.'),
    refresh: byTrustDomain('refresh', "Fetches the peer's bundle now and shows the outcome."),
    delete: byTrustDomain('delete', "Ends the relationship and drops the peer's bundle: agents and workloads lose it at once."),
  },
};
