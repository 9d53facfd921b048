import { parseSelector } from '../../ca/entries.js';
import type { Entry__Output } from '../../proto/gen/anchorage/admin/v1/Entry.js';
import { action, type CommandGroup, type Flags } from '../command.js';
import { esc, need, out, seconds, UsageError, withAdmin } from '../args.js';

const ENTRY_FIELDS = {
  'spiffe-id': { type: 'string', arg: 'ID', help: "the workload's SPIFFE ID" },
  'parent-id': { type: 'string', arg: 'ID', help: 'the agent (or a node alias) that may hand it out' },
  selector: { type: 'string', multiple: true, arg: 'TYPE:VALUE', help: 'what the workload must show, e.g. unix:uid:1000' },
  'x509-ttl': { type: 'string', arg: 'DURATION', help: 'X509-SVID lifetime (default: x509_svid_ttl of the server)' },
  'jwt-ttl': { type: 'string', arg: 'DURATION', help: 'JWT-SVID lifetime (default: jwt_svid_ttl of the server)' },
  dns: { type: 'string', multiple: true, arg: 'NAME', help: 'a DNS name in the X509-SVID' },
  'federates-with': { type: 'string', multiple: true, arg: 'TD', help: "a trust domain whose bundle the workload receives" },
  hint: { type: 'string', arg: 'H', help: 'a hint for the workload to tell its SVIDs apart' },
  admin: { type: 'boolean', help: 'the SVID may call the admin API' },
  downstream: { type: 'boolean', help: 'the workload is a downstream CA' },
} as const satisfies Flags;

function entryText(e: Entry__Output): string {
  const lines = [
    `Entry ID       : ${esc(e.id)}`,
    `SPIFFE ID      : ${esc(e.spiffe_id)}`,
    `Parent ID      : ${esc(e.parent_id)}`,
    `Revision       : ${e.revision}`,
    ...e.selectors.map((s) => `Selector       : ${esc(s.type)}:${esc(s.value)}`),
    `X509-SVID TTL  : ${e.x509_svid_ttl ? `${e.x509_svid_ttl}s` : 'default'}`,
    `JWT-SVID TTL   : ${e.jwt_svid_ttl ? `${e.jwt_svid_ttl}s` : 'default'}`,
    ...e.dns_names.map((d) => `DNS name       : ${esc(d)}`),
    ...e.federates_with.map((t) => `Federates with : ${esc(t)}`),
  ];
  if (e.hint) lines.push(`Hint           : ${esc(e.hint)}`);
  if (e.admin) lines.push('Admin          : true');
  if (e.downstream) lines.push('Downstream     : true');
  return lines.join('\n') + '\n';
}

function entryJson(e: Entry__Output) {
  return { ...e, selectors: e.selectors.map((s) => `${s.type}:${s.value}`) };
}

const ID = { id: { type: 'string', arg: 'ID', help: 'the entry ID' } } as const satisfies Flags;

export const command: CommandGroup = {
  name: 'entry',
  summary: 'Registration entries: which workloads get which SPIFFE ID.',
  actions: {
    create: action({
      name: 'entry create',
      synopsis: '--spiffe-id ID --parent-id ID --selector TYPE:VALUE... [flags] | --data FILE|-',
      summary: 'Registers a workload, or many from a file (one result each).',
      flags: {
        ...ENTRY_FIELDS,
        data: { type: 'string', arg: 'FILE|-', help: 'many entries in SPIRE\'s JSON shape ({"entries": [...]}), from a file or - for standard input' },
      },
      async run(v) {
        if (v.data !== undefined) {
          const also = (Object.keys(ENTRY_FIELDS) as Array<keyof typeof ENTRY_FIELDS>).filter((k) => v[k] !== undefined);
          if (also.length > 0) throw new UsageError(`--data cannot be combined with --${also[0]}: the file gives every field`);
          const { entryBatchCommand } = await import('../entry-batch.js');
          return entryBatchCommand(v.data, v);
        }
        const entry = {
          spiffe_id: need(v['spiffe-id'], 'spiffe-id'),
          parent_id: need(v['parent-id'], 'parent-id'),
          selectors: need(v.selector, 'selector').map(parseSelector),
          x509_svid_ttl: seconds(v['x509-ttl'], 'x509-ttl'),
          jwt_svid_ttl: seconds(v['jwt-ttl'], 'jwt-ttl'),
          dns_names: v.dns ?? [],
          federates_with: v['federates-with'] ?? [],
          hint: v.hint ?? '',
          admin: v.admin ?? false,
          downstream: v.downstream ?? false,
        };
        const e = await withAdmin(v, (a) => a.call('CreateEntry', { entry }));
        out(v.json, entryJson(e), () => entryText(e));
      },
    }),
    update: action({
      name: 'entry update',
      synopsis: '--id ID [fields of entry create] [--revision N]',
      summary: 'Changes the fields given; a list given replaces the old list.',
      flags: { ...ID, ...ENTRY_FIELDS, revision: { type: 'string', arg: 'N', help: 'refuse the change if the entry is no longer at revision N' } },
      async run(v) {
        const revision = v.revision === undefined ? 0 : Number(v.revision);
        if (!Number.isSafeInteger(revision) || revision < 0) throw new UsageError('--revision must be a whole number');
        const patch = {
          ...(v['spiffe-id'] !== undefined ? { spiffe_id: v['spiffe-id'] } : {}),
          ...(v['parent-id'] !== undefined ? { parent_id: v['parent-id'] } : {}),
          ...(v.selector ? { selectors: { items: v.selector.map(parseSelector) } } : {}),
          ...(v['x509-ttl'] !== undefined ? { x509_svid_ttl: seconds(v['x509-ttl'], 'x509-ttl') } : {}),
          ...(v['jwt-ttl'] !== undefined ? { jwt_svid_ttl: seconds(v['jwt-ttl'], 'jwt-ttl') } : {}),
          ...(v.dns ? { dns_names: { items: v.dns } } : {}),
          ...(v['federates-with'] ? { federates_with: { items: v['federates-with'] } } : {}),
          ...(v.hint !== undefined ? { hint: v.hint } : {}),
          ...(v.admin !== undefined ? { admin: v.admin } : {}),
          ...(v.downstream !== undefined ? { downstream: v.downstream } : {}),
        };
        if (Object.keys(patch).length === 0) throw new UsageError('entry update: give at least one field to change');
        const id = need(v.id, 'id');
        const e = await withAdmin(v, (a) => a.call('UpdateEntry', { id, patch, expect_revision: revision }));
        out(v.json, entryJson(e), () => entryText(e));
      },
    }),
    show: action({
      name: 'entry show',
      synopsis: '--id ID',
      summary: 'Shows one entry.',
      flags: ID,
      async run(v) {
        const id = need(v.id, 'id');
        const e = await withAdmin(v, (a) => a.call('GetEntry', { id }));
        out(v.json, entryJson(e), () => entryText(e));
      },
    }),
    delete: action({
      name: 'entry delete',
      synopsis: '--id ID',
      summary: 'Deletes one entry; its workloads lose the SVID at once.',
      flags: ID,
      async run(v) {
        const id = need(v.id, 'id');
        const e = await withAdmin(v, (a) => a.call('DeleteEntry', { id }));
        out(v.json, entryJson(e), () => `Deleted entry ${esc(e.id)} (${esc(e.spiffe_id)})\n`);
      },
    }),
    list: action({
      name: 'entry list',
      synopsis: '[--parent-id ID] [--spiffe-id ID]',
      summary: 'Lists entries, all or those with the given parent or SPIFFE ID.',
      flags: {
        'parent-id': { type: 'string', arg: 'ID', help: 'only entries with this parent' },
        'spiffe-id': { type: 'string', arg: 'ID', help: 'only entries with this SPIFFE ID' },
      },
      async run(v) {
        const res = await withAdmin(v, (a) => a.call('ListEntries', { parent_id: v['parent-id'] ?? '', spiffe_id: v['spiffe-id'] ?? '' }));
        out(v.json, res.entries.map(entryJson), () =>
          res.entries.length === 0 ? 'No entries\n' : `Found ${res.entries.length} entries\n` + res.entries.map((e) => '\n' + entryText(e)).join(''),
        );
      },
    }),
  },
};
