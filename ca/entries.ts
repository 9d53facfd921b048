import { invalid } from '@anchorage/client/errors';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { clip, codePointName, findControl, findLoneSurrogate, quote } from '../common/text.js';
import { controlMessage } from './admin/text.js';
import type { DataStore, NewEntry, Selector } from './datastore/DataStore.js';
import { checkNotReserved } from './reserved.js';
import { checkDnsName } from './x509/cert.js';

const SELECTOR_TYPE = /^[a-z0-9_-]{1,64}$/;
const MAX_SELECTORS = 64;
const MAX_SELECTOR_VALUE = 1024;
const MAX_DNS = 64;

/*
 * Messages quote what the caller sent with quote() (JSON-escaped, cut at 64
 * characters): a selector holding "\n" or ESC must not make a multi-line
 * message or drive the operator's terminal, and a 1 MB one must not make a
 * 1 MB message. SPIFFE IDs and trust domains are echoed once parsed (their
 * grammar allows printable ASCII only), cut by clip().
 */

/** Parses `type:value` (the value may itself contain colons, e.g. `unix:uid:1000`). */
export function parseSelector(text: string): Selector {
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1) {
    throw invalid(`entry: selector ${quote(text)} must be type:value (e.g. unix:uid:1000)`);
  }
  return checkSelector({ type: text.slice(0, i), value: text.slice(i + 1) });
}

/**
 * Checks one selector: a type of 1-64 characters of a-z, 0-9, _ or -, and a
 * value of 1-1024 characters with no control or bidirectional formatting
 * character (the class of ca/admin/text.ts, shared through common/text.ts)
 * and no lone surrogate, which cannot be stored or printed as UTF-8.
 */
export function checkSelector(s: Selector): Selector {
  if (!SELECTOR_TYPE.test(s.type)) {
    throw invalid(`entry: selector type ${quote(s.type)} must be 1-64 characters of a-z, 0-9, _ or -`);
  }
  // The type is checked: safe to name as is from here on.
  const field = `selector value for type "${s.type}"`;
  if (s.value === '' || s.value.length > MAX_SELECTOR_VALUE) {
    throw invalid(`entry: ${field} must be 1-${MAX_SELECTOR_VALUE} printable characters`);
  }
  const c = findControl(s.value);
  if (c !== undefined) throw invalid(controlMessage('entry', field, c));
  const u = findLoneSurrogate(s.value);
  if (u !== undefined) throw invalid(`entry: ${field} contains the lone surrogate ${codePointName(u)}; text must be well-formed Unicode`);
  return { type: s.type, value: s.value };
}

/** A DNS SAN, by the same rule the certificate encoder applies, reported as an entry error. */
function entryDnsName(name: string): string {
  try {
    checkDnsName(name);
  } catch {
    throw invalid(`entry: ${quote(name)} is not a valid DNS name (lower-case letters, digits, hyphens; optional leading *.)`);
  }
  return name;
}

/**
 * Validates an entry as a whole before anything is written: the datastore
 * stores only canonical, checked records.
 */
export function validateEntry(e: NewEntry, td: TrustDomain, maxTtl: number): NewEntry {
  const id = SpiffeId.parse(e.spiffeId);
  if (!id.memberOf(td)) throw invalid(`entry: spiffe id ${clip(id.toString())} is not in trust domain ${td.name}`);
  if (id.isTrustDomainId()) throw invalid(`entry: spiffe id ${clip(id.toString())} has no path`);
  // The parent may be an agent or the server (node aliases): only the ID the entry issues is checked.
  checkNotReserved(id, 'entry');
  const parent = SpiffeId.parse(e.parentId);
  if (!parent.memberOf(td)) throw invalid(`entry: parent id ${clip(parent.toString())} is not in trust domain ${td.name}`);
  if (parent.equals(id)) throw invalid('entry: an entry cannot be its own parent');
  if (e.selectors.length === 0) throw invalid('entry: at least one selector is required');
  if (e.selectors.length > MAX_SELECTORS) throw invalid(`entry: at most ${MAX_SELECTORS} selectors`);
  const selectors = e.selectors.map(checkSelector);
  const seen = new Set<string>();
  for (const s of selectors) {
    const k = `${s.type}:${s.value}`;
    if (seen.has(k)) throw invalid(`entry: selector ${quote(k)} is repeated`);
    seen.add(k);
  }
  for (const [name, ttl] of [['x509 ttl', e.x509SvidTtl], ['jwt ttl', e.jwtSvidTtl]] as const) {
    if (!Number.isInteger(ttl) || ttl < 0) throw invalid(`entry: ${name} must be a whole number of seconds`);
    if (ttl > maxTtl) throw invalid(`entry: ${name} of ${ttl}s goes beyond the CA lifetime of ${maxTtl}s`);
  }
  if (e.dnsNames.length > MAX_DNS) throw invalid(`entry: at most ${MAX_DNS} dns names`);
  const dnsNames = [...new Set(e.dnsNames.map(entryDnsName))];
  const federatesWith = [...new Set(e.federatesWith.map((t) => TrustDomain.parse(t).name))];
  if (federatesWith.includes(td.name)) throw invalid('entry: an entry cannot federate with its own trust domain');
  if (e.hint.length > 256) throw invalid('entry: hint must be at most 256 characters');
  const c = findControl(e.hint);
  if (c !== undefined) throw invalid(controlMessage('entry', 'hint', c));
  return {
    spiffeId: id.toString(),
    parentId: parent.toString(),
    selectors,
    x509SvidTtl: e.x509SvidTtl,
    jwtSvidTtl: e.jwtSvidTtl,
    dnsNames,
    federatesWith,
    hint: e.hint,
    admin: e.admin,
    downstream: e.downstream,
  };
}

/**
 * Refuses federating with a trust domain this server holds nothing of: with
 * neither a bundle (`anchorage bundle set`) nor a federation relationship
 * that will fetch one, the entry's workloads would silently get no bundle for
 * it, as in SPIRE ("unable to find federated bundle"). `kept` are trust
 * domains the entry federated with already: an update that leaves them in
 * place is not refused because a bundle was deleted since.
 */
export async function checkFederatesWith(ds: Pick<DataStore, 'getBundle' | 'getRelationship'>, federatesWith: string[], kept: string[] = []): Promise<void> {
  for (const td of federatesWith) {
    if (kept.includes(td)) continue;
    if ((await ds.getBundle(td)) || (await ds.getRelationship(td))) continue;
    throw invalid(
      `entry: cannot federate with ${clip(td)}: this server holds no bundle of it and no federation relationship with it (add one first: anchorage bundle set, or anchorage federation create)`,
    );
  }
}
