import { esc, need, out, parse, withAdmin } from './args.js';

/**
 * `anchorage agent ban|unban --spiffe-id ID`: stops an agent ID from
 * attesting again, or lets it. tpm and x509pop spend no secret, so evicting
 * such an agent only makes it attest again at once; a ban is what keeps it
 * out. Banning also evicts the agent's current SVID. The ID need not have
 * attested yet (a known-bad TPM's EK hash, say).
 */
export async function agentBanCommand(sub: 'ban' | 'unban', args: string[]): Promise<void> {
  const v = parse(args, { 'spiffe-id': { type: 'string' } });
  const spiffeId = need(v['spiffe-id'], 'spiffe-id');
  const res = await withAdmin(v, (a) => a.call(sub === 'ban' ? 'BanAgent' : 'UnbanAgent', { spiffe_id: spiffeId }));
  out(v.json, res, () =>
    sub === 'ban' ? `Banned ${esc(res.spiffe_id)}${res.evicted ? ' (its current SVID is evicted)' : ''}\n` : `Unbanned ${esc(res.spiffe_id)}\n`,
  );
}
