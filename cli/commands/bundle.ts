import { escapeJsonControls } from '../../ca/admin/text.js';
import { toPem } from '@anchorage/client/pem';
import type { FederatedBundle__Output } from '../../proto/gen/anchorage/admin/v1/FederatedBundle.js';
import { action, type CommandGroup, type Flags } from '../command.js';
import { esc, need, out, readInput, UsageError, withAdmin } from '../args.js';

function federatedText(b: FederatedBundle__Output): string {
  const iso = (t: number) => new Date(t * 1000).toISOString();
  return (
    `Trust domain: ${esc(b.trust_domain)} (${esc(b.source)})\nSequence    : ${b.sequence}\nUpdated     : ${iso(b.updated_at)}\n` +
    (b.source === 'endpoint'
      ? `Last refresh: ${b.last_refresh ? iso(b.last_refresh) : 'never'}\nLast error  : ${b.last_error ? `${esc(b.last_error)} (${iso(b.last_error_at)})` : 'none'}\n`
      : '') +
    b.keys.map((k) => `Key         : ${esc(k.use)} ${esc(k.id)}${k.not_after ? `, expires ${iso(k.not_after)}` : ''}\n`).join('')
  );
}

const TRUST_DOMAIN = { 'trust-domain': { type: 'string', arg: 'TD', help: 'the federated trust domain' } } as const satisfies Flags;

export const command: CommandGroup = {
  name: 'bundle',
  summary: "The trust domain's bundle, and bundles of federated trust domains set by hand (static federation).",
  actions: {
    show: action({
      name: 'bundle show',
      synopsis: '[--format pem|spiffe]',
      summary: "Prints the trust domain's X.509 authorities as PEM, or its SPIFFE bundle document.",
      flags: { format: { type: 'string', arg: 'pem|spiffe', help: 'pem (the default) or spiffe' } },
      async run(v) {
        const format = v.format ?? 'pem';
        if (format !== 'pem' && format !== 'spiffe') throw new UsageError(`--format must be pem or spiffe, not "${format}"`);
        const b = await withAdmin(v, (a) => a.call('GetBundle', {}));
        if (format === 'spiffe') {
          process.stdout.write(escapeJsonControls(JSON.stringify(JSON.parse(b.document), null, 2)) + '\n');
        } else if (v.json) {
          out(true, { trust_domain: b.trust_domain, sequence: b.sequence, x509_authorities: b.x509_authorities.map((d) => toPem('CERTIFICATE', d)) }, () => '');
        } else {
          process.stdout.write(b.x509_authorities.map((d) => toPem('CERTIFICATE', d)).join(''));
        }
      },
    }),
    set: action({
      name: 'bundle set',
      synopsis: '--trust-domain TD --file F|-',
      summary: "Sets a federated trust domain's bundle from a SPIFFE bundle document (static federation).",
      flags: { ...TRUST_DOMAIN, file: { type: 'string', arg: 'F', help: 'the bundle document, or - for standard input' } },
      async run(v) {
        const trustDomain = need(v['trust-domain'], 'trust-domain');
        const document = readInput(need(v.file, 'file'));
        const b = await withAdmin(v, (a) => a.call('SetFederatedBundle', { trust_domain: trustDomain, document }));
        out(v.json, b, () => federatedText(b));
      },
    }),
    list: action({
      name: 'bundle list',
      synopsis: '',
      summary: 'Lists every federated bundle: its source, sequence, last refresh, last error and keys.',
      flags: {},
      async run(v) {
        const res = await withAdmin(v, (a) => a.call('ListFederatedBundles', {}));
        out(v.json, res.bundles, () => (res.bundles.length === 0 ? 'No federated bundles\n' : res.bundles.map(federatedText).join('\n')));
      },
    }),
    delete: action({
      name: 'bundle delete',
      synopsis: '--trust-domain TD',
      summary: "Drops a federated trust domain's bundle.",
      flags: TRUST_DOMAIN,
      async run(v) {
        const trustDomain = need(v['trust-domain'], 'trust-domain');
        const b = await withAdmin(v, (a) => a.call('DeleteFederatedBundle', { trust_domain: trustDomain }));
        out(v.json, b, () => `Deleted the bundle of ${esc(b.trust_domain)}\n`);
      },
    }),
  },
};
