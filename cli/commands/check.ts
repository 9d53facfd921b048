import type { Agent__Output } from '../../proto/gen/anchorage/admin/v1/Agent.js';
import type { ListAuthoritiesResponse__Output } from '../../proto/gen/anchorage/admin/v1/ListAuthoritiesResponse.js';
import type { CAKey__Output } from '../../proto/gen/anchorage/admin/v1/CAKey.js';
import type { FederationRelationship__Output } from '../../proto/gen/anchorage/admin/v1/FederationRelationship.js';
import type { KeyProtectionReport__Output } from '../../proto/gen/anchorage/admin/v1/KeyProtectionReport.js';
import { errorMessage } from '@anchorage/client/errors';
import { action, type CommandGroup } from '../command.js';
import { esc, out, withAdmin } from '../args.js';

/**
 * `anchorage check`: the health of the trust stack, one line per check, like
 * `linkerd check`. Everything comes from the server's admin API; the
 * horizons are here, each with the reason it was chosen.
 */

export type Status = 'ok' | 'warn' | 'fail';

export interface Check {
  category: 'hsm' | 'ca' | 'agents' | 'federation';
  name: string;
  status: Status;
  message: string;
  /** What to do about it; empty when all is well. */
  hint: string;
}

const DAY = 86400;
/** Root expiry horizons (issue 15): a root takes weeks to replace everywhere it is trusted. */
const ROOT_WARN_DAYS = 90;
const ROOT_FAIL_DAYS = 30;
/** The CA manager ticks on its own schedule: a transition this late is not yet "late". */
const ROTATION_GRACE = 60;
/** Agents report every minute (node-agent/agent.ts): five missed reports is a warning, an hour a failure. */
const SEEN_WARN = 5 * 60;
const SEEN_FAIL = 3600;
/** SVIDs are backdated 10 s: a clock further behind sees new SVIDs as not yet valid. */
const SKEW_WARN_MS = 2000;
const SKEW_FAIL_MS = 10_000;
/** A peer's bundle is refreshed at its hint: stale after two hints missed, failed after five. */
const FED_WARN_HINTS = 2;
const FED_FAIL_HINTS = 5;
/** When a peer publishes no hint (SPIFFE bundle default). */
const DEFAULT_REFRESH_HINT = 300;

/** A root rotation whose gate has waited this long for agents is worth a look. */
const ROOT_GATE_WARN = 3600;

const iso = (t: number) => new Date(t * 1000).toISOString();

function ago(seconds: number): string {
  if (seconds < 120) return `${seconds}s ago`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 2 * DAY) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / DAY)}d ago`;
}

export function hsmChecks(report: KeyProtectionReport__Output | Error): Check[] {
  if (report instanceof Error) {
    return [{ category: 'hsm', name: 'HSM reachable', status: 'fail', message: errorMessage(report), hint: "check the token, its module and PIN in server.yaml's key_manager, and the server's log" }];
  }
  const checks: Check[] = [];
  const inHsm = report.keys.filter((k) => k.key_manager === 'pkcs11');
  const found = inHsm.filter((k) => k.found).length;
  if (inHsm.length > 0 && found === 0) {
    // A token that went away answers finds with nothing (SoftHSM2 does): not a reachable HSM.
    checks.push({ category: 'hsm', name: 'HSM reachable', status: 'fail', message: `the token holds none of the ${inHsm.length} CA keys`, hint: "is the token there? check the module, token_label and PIN in server.yaml's key_manager, and the server's log" });
  } else if (inHsm.length > 0) {
    checks.push({ category: 'hsm', name: 'HSM reachable', status: 'ok', message: `the token answered for ${found} CA keys`, hint: '' });
  }
  for (const k of report.keys.filter((x) => x.key_manager !== 'pkcs11')) {
    checks.push({
      category: 'hsm',
      name: `CA key ${k.key_id}`,
      status: 'warn',
      message: `held by the ${k.key_manager} key manager, not an HSM`,
      hint: 'keep CA keys in an HSM in production (key_manager: type: pkcs11)',
    });
  }
  const bad = inHsm.filter((k) => !k.found || !k.sensitive || k.extractable || !k.never_extractable || !k.always_sensitive);
  for (const k of bad) {
    checks.push({
      category: 'hsm',
      name: `CA key ${k.key_id}`,
      status: 'fail',
      message: k.found
        ? `can leave the token: CKA_SENSITIVE=${k.sensitive}, CKA_EXTRACTABLE=${k.extractable}, CKA_ALWAYS_SENSITIVE=${k.always_sensitive}, CKA_NEVER_EXTRACTABLE=${k.never_extractable}`
        : 'has no private key on the token',
      hint: k.found
        ? 'a key that was ever extractable may have been copied: replace it with one the token generates (anchorage makes keys sensitive and never extractable)'
        : 'the token is not the one the CA journal was made with: check token_label and module',
    });
  }
  if (inHsm.length > 0 && bad.length === 0) {
    checks.push({ category: 'hsm', name: 'CA keys', status: 'ok', message: `all ${inHsm.length} are sensitive and never extractable`, hint: '' });
  }
  return checks;
}

export function rootChecks(keys: CAKey__Output[], now: number): Check[] {
  const roots = keys.filter((k) => k.kind === 'root' && k.status === 'active');
  if (roots.length === 0) return [{ category: 'ca', name: 'root', status: 'fail', message: 'no active root in the CA journal', hint: "see the server's log: it makes or loads the root at start" }];
  return roots.map((r) => {
    const days = Math.ceil((r.not_after - now) / DAY);
    const status: Status = days < ROOT_FAIL_DAYS ? 'fail' : days < ROOT_WARN_DAYS ? 'warn' : 'ok';
    return {
      category: 'ca',
      name: 'root',
      status,
      message: r.not_after <= now ? `expired at ${iso(r.not_after)}` : `expires in ${days} days (${iso(r.not_after)})`,
      hint: status === 'ok' ? '' : `replace the root before it expires, and give every party that trusts it the new one (under ${ROOT_FAIL_DAYS} days fails, under ${ROOT_WARN_DAYS} warns)`,
    };
  });
}

export function rotationChecks(keys: CAKey__Output[], now: number): Check[] {
  return (['x509', 'jwt'] as const).map((kind) => {
    const name = kind === 'x509' ? 'intermediate rotation' : 'JWT key rotation';
    const fail = (message: string, hint: string): Check => ({ category: 'ca', name, status: 'fail', message, hint });
    const ofKind = keys.filter((k) => k.kind === kind);
    const active = ofKind.filter((k) => k.status === 'active').sort((a, b) => b.not_after - a.not_after)[0];
    if (!active) return fail('no active key', "see the server's log: the CA manager could not prepare one");
    if (active.not_after <= now) return fail(`the active key ${active.id} expired at ${iso(active.not_after)}`, "the CA manager has stopped rotating: see the server's log");
    if (now > active.activate_at + ROTATION_GRACE) {
      return fail(`its successor is overdue: due active at ${iso(active.activate_at)}, the active key expires at ${iso(active.not_after)}`, "see the server's log: preparing or activating a key failed");
    }
    const prepared = ofKind.some((k) => k.status === 'prepared');
    if (!prepared && now > active.prepare_at + ROTATION_GRACE) {
      return { category: 'ca', name, status: 'warn', message: `no successor prepared since ${iso(active.prepare_at)}`, hint: "see the server's log: preparing a key failed" };
    }
    return {
      category: 'ca',
      name,
      status: 'ok',
      message: prepared ? `successor prepared, due active at ${iso(active.activate_at)}` : `next key due at ${iso(active.prepare_at)}`,
      hint: '',
    };
  });
}

export function agentChecks(agents: Agent__Output[], serverSequence: number, now: number): Check[] {
  const live = agents.filter((a) => !a.evicted);
  if (live.length === 0) return [{ category: 'agents', name: 'agents', status: 'ok', message: 'no attested agents', hint: '' }];
  const checks: Check[] = live.map((a) => {
    const problems: Array<{ status: Status; hint: string }> = [];
    const facts: string[] = [];
    if (a.last_seen_at === 0) {
      facts.push('never reported');
      problems.push({ status: 'warn', hint: 'an agent reports once synced: is it running and able to reach the server?' });
    } else {
      const since = Math.max(0, now - a.last_seen_at);
      facts.push(`seen ${ago(since)}`);
      if (since > SEEN_WARN) problems.push({ status: since > SEEN_FAIL ? 'fail' : 'warn', hint: 'the agent has stopped reporting: is it running and able to reach the server?' });
      facts.push(`bundle ${a.bundle_sequence}/${serverSequence}`);
      if (a.bundle_sequence < serverSequence) problems.push({ status: 'warn', hint: `the agent holds an older bundle than the server's (sequence ${serverSequence}): it misses the newest authorities` });
    }
    facts.push(a.cert_not_after <= now ? `SVID expired at ${iso(a.cert_not_after)}` : `SVID until ${iso(a.cert_not_after)}`);
    if (a.cert_not_after <= now) problems.push({ status: 'fail', hint: 'the agent could not renew its SVID: it must attest again' });
    const status: Status = problems.some((p) => p.status === 'fail') ? 'fail' : problems.length > 0 ? 'warn' : 'ok';
    return { category: 'agents', name: `agent ${a.spiffe_id}`, status, message: facts.join(', '), hint: problems.map((p) => p.hint).join('; ') };
  });
  const reported = live.filter((a) => a.last_seen_at > 0);
  if (reported.length > 0) {
    const worst = reported.reduce((w, a) => (Math.abs(a.clock_skew_ms) > Math.abs(w.clock_skew_ms) ? a : w));
    const skew = Math.abs(worst.clock_skew_ms);
    const status: Status = skew > SKEW_FAIL_MS ? 'fail' : skew > SKEW_WARN_MS ? 'warn' : 'ok';
    checks.push({
      category: 'agents',
      name: 'clock skew',
      status,
      message: `at most ${worst.clock_skew_ms} ms (agent − server), ${worst.spiffe_id}`,
      hint: status === 'ok' ? '' : `synchronize the clocks (NTP): beyond ${SKEW_FAIL_MS / 1000} s, fresh SVIDs look not yet valid to the agent`,
    });
  }
  return checks;
}

export function federationChecks(rels: FederationRelationship__Output[], now: number): Check[] {
  return rels.map((r) => {
    const hint = r.bundle?.refresh_hint || DEFAULT_REFRESH_HINT;
    const facts: string[] = [];
    const problems: Array<{ status: Status; hint: string }> = [];
    if (r.last_success_at === 0) {
      facts.push('never fetched');
      problems.push({ status: r.bundle ? 'warn' : 'fail', hint: `the endpoint ${r.bundle_endpoint_url} has not answered yet: run "anchorage federation refresh --trust-domain ${r.trust_domain}"` });
    } else {
      const since = Math.max(0, now - r.last_success_at);
      facts.push(`fetched ${ago(since)} (refresh hint ${hint}s)`);
      if (since > FED_WARN_HINTS * hint) {
        problems.push({ status: since > FED_FAIL_HINTS * hint ? 'fail' : 'warn', hint: `the peer's bundle is stale: its endpoint ${r.bundle_endpoint_url} has not answered for ${Math.floor(since / hint)} refresh hints` });
      }
    }
    if (r.last_error && r.last_error_at >= r.last_success_at) {
      facts.push(`last error ${r.last_error_reason}: ${r.last_error}`);
      problems.push({ status: 'warn', hint: `${r.consecutive_failures} refreshes in a row failed` });
    }
    const expiring = (r.bundle?.keys ?? []).filter((k) => k.not_after > 0).sort((a, b) => a.not_after - b.not_after)[0];
    if (expiring) {
      facts.push(`${expiring.not_after <= now ? 'an authority expired' : 'soonest authority expires'} ${iso(expiring.not_after)}`);
      if (expiring.not_after <= now) problems.push({ status: 'fail', hint: `the peer's ${expiring.use} authority ${expiring.id} has expired and the peer has published no replacement we hold` });
      else if (expiring.not_after - now < FED_WARN_HINTS * hint) problems.push({ status: 'warn', hint: `the peer's ${expiring.use} authority ${expiring.id} expires before two more refreshes` });
    } else if (!r.bundle) {
      facts.push('no bundle held');
    }
    const status: Status = problems.some((p) => p.status === 'fail') ? 'fail' : problems.length > 0 ? 'warn' : 'ok';
    return { category: 'federation', name: `federation ${r.trust_domain}`, status, message: facts.join(', '), hint: problems.map((p) => p.hint).join('; ') };
  });
}

const MARK: Record<Status, string> = { ok: '✔', warn: '‼', fail: '✗' };

/**
 * The authority lifecycle (anchorage authority ...): a tainted authority that
 * is still trusted, and a root rotation held back by agents that have not
 * acknowledged the new root.
 */
export function authorityChecks(lists: Record<'x509' | 'jwt' | 'root', ListAuthoritiesResponse__Output>, now: number): Check[] {
  const checks: Check[] = [];
  for (const kind of ['x509', 'jwt'] as const) {
    for (const a of lists[kind].authorities.filter((x) => x.tainted && !x.revoked)) {
      checks.push({
        category: 'ca',
        name: `tainted ${kind} authority`,
        status: 'warn',
        message: `${a.id} was tainted ${ago(now - a.tainted_at)} and is still trusted`,
        hint:
          kind === 'jwt'
            ? `revoke it once its tokens are no longer needed: anchorage authority jwt revoke --id ${a.id}`
            : `revoke it (with its root) once nothing depends on it; see "Authority lifecycle" in the README`,
      });
    }
  }
  const root = lists.root;
  const pending = root.authorities.find((r) => r.status === 'prepared' && !r.revoked);
  const old = root.authorities.filter((r) => r.status === 'old' && !r.revoked);
  if (pending || old.length > 0) {
    const what = pending ? `root ${pending.id} is prepared, not active` : `old root(s) ${old.map((r) => r.id).join(', ')} still published`;
    const since = pending ? pending.not_before : Math.min(...old.map((r) => r.not_before));
    const lagging = root.lagging.length;
    checks.push({
      category: 'ca',
      name: 'root rotation',
      status: lagging > 0 && now - since > ROOT_GATE_WARN ? 'warn' : 'ok',
      message: `${what}; ${root.agents - lagging} of ${root.agents} agents hold every published root`,
      hint:
        lagging > 0
          ? `agents lagging: ${root.lagging.slice(0, 3).map((l) => l.spiffe_id).join(', ')}${lagging > 3 ? ` and ${lagging - 3} more` : ''} (anchorage authority root list)`
          : pending
            ? 'every agent holds it: anchorage authority root activate'
            : '',
    });
  }
  return checks;
}

function checkText(checks: Check[]): string {
  const count = (s: Status) => checks.filter((c) => c.status === s).length;
  return (
    checks.map((c) => `${MARK[c.status]} ${esc(c.name)}: ${esc(c.message)}\n${c.hint ? `    hint: ${esc(c.hint)}\n` : ''}`).join('') +
    `\nStatus check results: ${count('ok')} passed, ${count('warn')} warnings, ${count('fail')} failed\n`
  );
}

export const command: CommandGroup = {
  name: 'check',
  summary: 'The health of the trust stack: HSM, root, rotation, agents, federation.',
  actions: {},
  bare: action({
      name: 'check',
      synopsis: '[--output json]',
      summary:
        'One line per check, ✔ (ok), ‼ (warning) or ✗ (failed), with a hint; exit 1 on any ✗.\n' +
        `Root expiry warns under ${ROOT_WARN_DAYS} days and fails under ${ROOT_FAIL_DAYS}; an agent unseen for ${SEEN_WARN / 60} minutes warns, for an hour fails;\n` +
        `clock skew warns over ${SKEW_WARN_MS / 1000} s and fails over ${SKEW_FAIL_MS / 1000} s; a federated bundle warns after ${FED_WARN_HINTS} refresh hints without a fetch, fails after ${FED_FAIL_HINTS}.`,
      flags: {},
      async run(v) {
        const checks = await withAdmin(v, async (a) => {
          const [ca, bundle, agents, rels] = await Promise.all([
            a.call('GetCAStatus', {}),
            a.call('GetBundle', {}),
            a.call('ListAgents', {}),
            a.call('ListFederationRelationships', {}),
          ]);
          const keys = await a.call('GetKeyProtection', {}).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
          const [x509, jwt, root] = await Promise.all((['x509', 'jwt', 'root'] as const).map((kind) => a.call('ListAuthorities', { kind })));
          const now = Math.floor(Date.now() / 1000);
          return [
            ...hsmChecks(keys),
            ...rootChecks(ca.keys, now),
            ...rotationChecks(ca.keys, now),
            ...authorityChecks({ x509: x509!, jwt: jwt!, root: root! }, now),
            ...agentChecks(agents.agents, bundle.sequence, now),
            ...federationChecks(rels.relationships, now),
          ];
        });
        const summary = { ok: 0, warn: 0, fail: 0 };
        for (const c of checks) summary[c.status]++;
        out(v.json, { checks, summary }, () => checkText(checks));
        return summary.fail > 0 ? 1 : 0;
      },
    }),
};
