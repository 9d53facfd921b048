import { action, type CommandGroup } from '../command.js';
import { need, out, seconds, withAdmin } from '../args.js';

export const command: CommandGroup = {
  name: 'jwt',
  summary: 'JWT-SVIDs minted by the server for a caller of the admin API.',
  actions: {
    mint: action({
      name: 'jwt mint',
      synopsis: '--spiffe-id ID --audience A... [--ttl DURATION]',
      summary: 'Prints a JWT-SVID.',
      flags: {
        'spiffe-id': { type: 'string', arg: 'ID', help: "the token's subject" },
        audience: { type: 'string', multiple: true, arg: 'A', help: 'an audience (aud)' },
        ttl: { type: 'string', arg: 'DURATION', help: 'lifetime (default: jwt_svid_ttl of the server)' },
      },
      async run(v) {
        const request = { spiffe_id: need(v['spiffe-id'], 'spiffe-id'), audience: need(v.audience, 'audience'), ttl: seconds(v.ttl, 'ttl') };
        const res = await withAdmin(v, (a) => a.call('MintJWTSVID', request));
        out(v.json, res, () => res.token + '\n');
      },
    }),
  },
};
