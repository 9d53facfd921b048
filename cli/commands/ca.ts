import { toPem } from '@anchorage/client/pem';
import { action, type CommandGroup } from '../command.js';
import { esc, out, withAdmin } from '../args.js';

export const command: CommandGroup = {
  name: 'ca',
  summary: 'The CA journal.',
  actions: {
    show: action({
      name: 'ca show',
      synopsis: '',
      summary: 'Shows the root, the intermediates and the JWT keys with their state and validity.',
      flags: {},
      async run(v) {
        const s = await withAdmin(v, (a) => a.call('GetCAStatus', {}));
        const iso = (t: number) => new Date(t * 1000).toISOString();
        out(
          v.json,
          { ...s, keys: s.keys.map((k) => ({ ...k, cert: k.cert.length ? toPem('CERTIFICATE', k.cert) : undefined })) },
          () =>
            `Trust domain: ${esc(s.trust_domain)} (key manager: ${esc(s.key_manager)})\n` +
            s.keys
              .map((k) => `${esc(k.kind).padEnd(5)} ${esc(k.status).padEnd(9)} ${esc(k.id).padEnd(42)} ${iso(k.not_before)} → ${iso(k.not_after)}${k.kid ? ` kid=${esc(k.kid)}` : ''}`)
              .join('\n') +
            '\n',
        );
      },
    }),
  },
};
