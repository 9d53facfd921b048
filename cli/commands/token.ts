import { action, type CommandGroup } from '../command.js';
import { esc, out, seconds, withAdmin } from '../args.js';

export const command: CommandGroup = {
  name: 'token',
  summary: 'Join tokens, with which a node agent attests once.',
  actions: {
    create: action({
      name: 'token create',
      synopsis: '[--spiffe-id ID] [--ttl DURATION]',
      summary: 'Makes a single-use join token for an agent.',
      flags: {
        'spiffe-id': { type: 'string', arg: 'ID', help: 'the SPIFFE ID the agent gets (default: one made from the token)' },
        ttl: { type: 'string', arg: 'DURATION', help: 'how long the token is valid (default 10m)' },
      },
      async run(v) {
        const ttl = seconds(v.ttl, 'ttl');
        const t = await withAdmin(v, (a) => a.call('CreateJoinToken', { spiffe_id: v['spiffe-id'] ?? '', ttl }));
        out(v.json, t, () => `Token: ${esc(t.token)}\nExpires: ${new Date(t.expires_at * 1000).toISOString()}\n`);
      },
    }),
  },
};
