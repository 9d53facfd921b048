import { X509Certificate, generateKeyPairSync, webcrypto } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { AnchorageError, errorMessage, invalid } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { toPem } from '../common/pem.js';
import { loadServerConfig } from '../ca/config.js';
import { loadAgentConfig } from '../node-agent/config.js';
import { parseSelector } from '../ca/entries.js';
import type { Entry__Output } from '../proto/gen/anchorage/admin/v1/Entry.js';
import type { Agent__Output } from '../proto/gen/anchorage/admin/v1/Agent.js';
import type { FederatedBundle__Output } from '../proto/gen/anchorage/admin/v1/FederatedBundle.js';
import { esc, HelpRequested, need, out, parse, readInput, seconds, UsageError, withAdmin } from './args.js';
import { escapeControls, escapeJsonControls } from '../ca/admin/text.js';
import { entryBatchCommand } from './entry-batch.js';
import { federationCommand } from './federation.js';

const USAGE = `usage: anchorage <command> [flags]

  server run -c server.yaml                 run the server
  entry create --spiffe-id ID --parent-id ID --selector type:value... [--x509-ttl D] [--jwt-ttl D]
               [--dns NAME]... [--federates-with TD]... [--hint H] [--admin] [--downstream]
  entry create --data FILE|-                 many entries from SPIRE's JSON shape ({"entries": [...]}), one result each
  entry update --id ID [same flags as create; given lists replace the old ones] [--revision N]
  entry show --id ID | entry delete --id ID | entry list [--parent-id ID] [--spiffe-id ID]
  token create [--spiffe-id ID] [--ttl D]   join token for an agent
  bundle show [--format pem|spiffe]         the trust domain's bundle
  bundle set --trust-domain TD --file F|-   a federated trust domain's bundle document (static federation)
  bundle list | bundle delete --trust-domain TD
  federation create --trust-domain TD --url URL --profile https_spiffe --endpoint-id ID --bootstrap-bundle F
  federation create --trust-domain TD --url URL --profile https_web [--ca-file F]
                                            a federation relationship: the server fetches TD's bundle
  federation update --trust-domain TD [same flags; those given replace the old values]
  federation list | show | refresh | delete --trust-domain TD
  x509 mint --spiffe-id ID [--ttl D] [--dns NAME]... --out-dir DIR
  jwt mint --spiffe-id ID --audience A... [--ttl D]
  ca show                                   the CA journal (root, intermediates, JWT keys)
  agent run -c agent.yaml                   run a node agent and its Workload API
  agent list | agent show --spiffe-id ID | agent evict --spiffe-id ID

Every command but "server run" and "agent run" reaches the server through --socket PATH, or the
admin_socket of -c server.yaml, and takes --json for machine-readable output.
Durations: 30s, 15m, 1h30m, 7d.`;

const ENTRY_FIELDS = {
  'spiffe-id': { type: 'string' },
  'parent-id': { type: 'string' },
  selector: { type: 'string', multiple: true },
  'x509-ttl': { type: 'string' },
  'jwt-ttl': { type: 'string' },
  dns: { type: 'string', multiple: true },
  'federates-with': { type: 'string', multiple: true },
  hint: { type: 'string' },
  admin: { type: 'boolean' },
  downstream: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

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

/** Writes files into `dir` so that either all of them appear or none does. */
function writeAllOrNothing(dir: string, files: Array<{ name: string; data: string; mode: number }>): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  else if (!statSync(dir).isDirectory()) throw invalid(`cli: --out-dir ${dir} is not a directory`);
  const staged: Array<{ tmp: string; final: string }> = [];
  try {
    for (const f of files) {
      const tmp = join(dir, `.${f.name}.${process.pid}.tmp`);
      writeFileSync(tmp, f.data, { mode: f.mode, flag: 'wx' });
      staged.push({ tmp, final: join(dir, f.name) });
    }
    for (const s of staged) renameSync(s.tmp, s.final);
  } catch (err) {
    for (const s of staged) rmSync(s.tmp, { force: true });
    throw invalid(`cli: cannot write to ${dir}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

async function makeCsr(spiffeId: string): Promise<{ csrDer: Uint8Array; keyPem: string }> {
  // Loaded here, not at start: most commands never need them, and every command pays for its imports.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  // The workload's key is made here, by the caller, and never sent anywhere.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = {
    privateKey: webcrypto.subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']),
    publicKey: webcrypto.subtle.importKey('spki', publicKey.export({ type: 'spki', format: 'der' }), alg, true, ['verify']),
  };
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: { privateKey: await keys.privateKey, publicKey: await keys.publicKey },
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  });
  return { csrDer: new Uint8Array(csr.rawData), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** Keeps a long-running process up until SIGINT or SIGTERM, then closes it cleanly. */
function untilSignal(logger: { info(o: object, msg: string): void }, who: string, close: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, `${who}: shutting down`);
      close().then(resolve, resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

async function serverRun(args: string[]): Promise<void> {
  const v = parse(args, {});
  const cfg = loadServerConfig(need(v.config, 'config'));
  const logger = createLogger('anchorage-server', cfg.log_level);
  const { startServer } = await import('../ca/server.js');
  const server = await startServer(cfg, { logger });
  await untilSignal(logger, 'server', () => server.close());
}

async function agentRun(args: string[]): Promise<void> {
  const v = parse(args, {});
  const cfg = loadAgentConfig(need(v.config, 'config'));
  const logger = createLogger('anchorage-agent', cfg.log_level);
  const { runAgent } = await import('../node-agent/run.js');
  const running = await runAgent(cfg, { logger });
  await untilSignal(logger, 'agent', () => running.close());
}

async function entryCommand(sub: string | undefined, args: string[]): Promise<void> {
  switch (sub) {
    case 'create': {
      if (args.some((a) => a === '--data' || a.startsWith('--data='))) return entryBatchCommand(args);
      const v = parse(args, ENTRY_FIELDS);
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
      return out(v.json, entryJson(e), () => entryText(e));
    }
    case 'update': {
      const v = parse(args, { ...ENTRY_FIELDS, id: { type: 'string' }, revision: { type: 'string' } });
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
      return out(v.json, entryJson(e), () => entryText(e));
    }
    case 'show':
    case 'delete': {
      const v = parse(args, { id: { type: 'string' } });
      const id = need(v.id, 'id');
      const e = await withAdmin(v, (a) => (sub === 'show' ? a.call('GetEntry', { id }) : a.call('DeleteEntry', { id })));
      return out(v.json, entryJson(e), () => (sub === 'show' ? entryText(e) : `Deleted entry ${esc(e.id)} (${esc(e.spiffe_id)})\n`));
    }
    case 'list': {
      const v = parse(args, { 'parent-id': { type: 'string' }, 'spiffe-id': { type: 'string' } });
      const res = await withAdmin(v, (a) =>
        a.call('ListEntries', { parent_id: v['parent-id'] ?? '', spiffe_id: v['spiffe-id'] ?? '' }),
      );
      return out(v.json, res.entries.map(entryJson), () =>
        res.entries.length === 0 ? 'No entries\n' : `Found ${res.entries.length} entries\n` + res.entries.map((e) => '\n' + entryText(e)).join(''),
      );
    }
    default:
      throw new UsageError(`entry: unknown subcommand "${sub ?? ''}" (create, update, show, delete, list)`);
  }
}

async function tokenCommand(sub: string | undefined, args: string[]): Promise<void> {
  if (sub !== 'create') throw new UsageError(`token: unknown subcommand "${sub ?? ''}" (create)`);
  const v = parse(args, { 'spiffe-id': { type: 'string' }, ttl: { type: 'string' } });
  const ttl = seconds(v.ttl, 'ttl');
  const t = await withAdmin(v, (a) => a.call('CreateJoinToken', { spiffe_id: v['spiffe-id'] ?? '', ttl }));
  out(v.json, t, () => `Token: ${esc(t.token)}\nExpires: ${new Date(t.expires_at * 1000).toISOString()}\n`);
}

async function bundleCommand(sub: string | undefined, args: string[]): Promise<void> {
  if (sub === 'set' || sub === 'list' || sub === 'delete') return federatedBundleCommand(sub, args);
  if (sub !== 'show') throw new UsageError(`bundle: unknown subcommand "${sub ?? ''}" (show, set, list, delete)`);
  const v = parse(args, { format: { type: 'string' } });
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
}

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

/** `bundle set|list|delete`: bundles of federated trust domains, set by hand. */
async function federatedBundleCommand(sub: 'set' | 'list' | 'delete', args: string[]): Promise<void> {
  if (sub === 'list') {
    const v = parse(args, {});
    const res = await withAdmin(v, (a) => a.call('ListFederatedBundles', {}));
    return out(v.json, res.bundles, () => (res.bundles.length === 0 ? 'No federated bundles\n' : res.bundles.map(federatedText).join('\n')));
  }
  const v = parse(args, { 'trust-domain': { type: 'string' }, file: { type: 'string' } });
  const trustDomain = need(v['trust-domain'], 'trust-domain');
  if (sub === 'delete') {
    const b = await withAdmin(v, (a) => a.call('DeleteFederatedBundle', { trust_domain: trustDomain }));
    return out(v.json, b, () => `Deleted the bundle of ${esc(b.trust_domain)}\n`);
  }
  const file = need(v.file, 'file');
  const document = readInput(file);
  const b = await withAdmin(v, (a) => a.call('SetFederatedBundle', { trust_domain: trustDomain, document }));
  out(v.json, b, () => federatedText(b));
}

async function x509Command(sub: string | undefined, args: string[]): Promise<void> {
  if (sub !== 'mint') throw new UsageError(`x509: unknown subcommand "${sub ?? ''}" (mint)`);
  const v = parse(args, { 'spiffe-id': { type: 'string' }, ttl: { type: 'string' }, dns: { type: 'string', multiple: true }, 'out-dir': { type: 'string' } });
  const spiffeId = need(v['spiffe-id'], 'spiffe-id');
  const outDir = need(v['out-dir'], 'out-dir');
  const ttl = seconds(v.ttl, 'ttl');
  const { csrDer, keyPem } = await makeCsr(spiffeId);
  const res = await withAdmin(v, (a) => a.call('MintX509SVID', { csr: Buffer.from(csrDer), spiffe_id: spiffeId, ttl, dns_names: v.dns ?? [] }));
  writeAllOrNothing(outDir, [
    { name: 'svid.pem', data: res.chain.map((d) => toPem('CERTIFICATE', d)).join(''), mode: 0o644 },
    { name: 'key.pem', data: keyPem, mode: 0o600 },
    { name: 'bundle.pem', data: res.bundle.map((d) => toPem('CERTIFICATE', d)).join(''), mode: 0o644 },
  ]);
  const leaf = new X509Certificate(res.chain[0]!);
  out(
    v.json,
    { spiffe_id: spiffeId, expires_at: res.expires_at, serial: leaf.serialNumber, files: ['svid.pem', 'key.pem', 'bundle.pem'].map((f) => join(outDir, f)) },
    () => `SPIFFE ID: ${esc(spiffeId)}\nExpires  : ${new Date(res.expires_at * 1000).toISOString()}\nWrote    : ${join(outDir, 'svid.pem')}, key.pem, bundle.pem\n`,
  );
}

async function jwtCommand(sub: string | undefined, args: string[]): Promise<void> {
  if (sub !== 'mint') throw new UsageError(`jwt: unknown subcommand "${sub ?? ''}" (mint)`);
  const v = parse(args, { 'spiffe-id': { type: 'string' }, audience: { type: 'string', multiple: true }, ttl: { type: 'string' } });
  const request = { spiffe_id: need(v['spiffe-id'], 'spiffe-id'), audience: need(v.audience, 'audience'), ttl: seconds(v.ttl, 'ttl') };
  const res = await withAdmin(v, (a) => a.call('MintJWTSVID', request));
  out(v.json, res, () => res.token + '\n');
}

async function agentCommand(sub: string | undefined, args: string[]): Promise<void> {
  if (sub !== 'list' && sub !== 'show' && sub !== 'evict') throw new UsageError(`agent: unknown subcommand "${sub ?? ''}" (run, list, show, evict)`);
  const v = parse(args, sub === 'list' ? {} : { 'spiffe-id': { type: 'string' } });
  const iso = (t: number) => new Date(t * 1000).toISOString();
  const text = (a: Agent__Output) =>
    `Agent      : ${esc(a.spiffe_id)}\nAttested by: ${esc(a.attestation_type)}\nSVID       : serial ${esc(a.cert_serial)}, expires ${iso(a.cert_not_after)}\n` +
    `Evicted    : ${a.evicted}\n` + a.selectors.map((s) => `Selector   : ${esc(s.type)}:${esc(s.value)}\n`).join('');
  if (sub === 'list') {
    const res = await withAdmin(v, (a) => a.call('ListAgents', {}));
    return out(v.json, res.agents, () => (res.agents.length === 0 ? 'No agents\n' : res.agents.map(text).join('\n')));
  }
  const spiffeId = need((v as { 'spiffe-id'?: string })['spiffe-id'], 'spiffe-id');
  const agent = await withAdmin(v, (a) => a.call(sub === 'show' ? 'GetAgent' : 'EvictAgent', { spiffe_id: spiffeId }));
  out(v.json, agent, () => (sub === 'evict' ? `Evicted ${esc(agent.spiffe_id)}\n` : text(agent)));
}

async function caCommand(sub: string | undefined, args: string[]): Promise<void> {
  if (sub !== 'show') throw new UsageError(`ca: unknown subcommand "${sub ?? ''}" (show)`);
  const v = parse(args, {});
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
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  try {
    switch (cmd) {
      case 'server':
        if (sub !== 'run') throw new UsageError(`server: unknown subcommand "${sub ?? ''}" (run)`);
        await serverRun(rest);
        break;
      case 'entry':
        await entryCommand(sub, rest);
        break;
      case 'token':
        await tokenCommand(sub, rest);
        break;
      case 'bundle':
        await bundleCommand(sub, rest);
        break;
      case 'federation':
        await federationCommand(sub, rest);
        break;
      case 'x509':
        await x509Command(sub, rest);
        break;
      case 'jwt':
        await jwtCommand(sub, rest);
        break;
      case 'ca':
        await caCommand(sub, rest);
        break;
      case 'agent':
        if (sub === 'run') await agentRun(rest);
        else await agentCommand(sub, rest);
        break;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE + '\n');
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
    return 0;
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`anchorage: ${escapeControls(err.message)}\n(run "anchorage help" for usage)\n`);
      return 2;
    }
    const message = err instanceof AnchorageError ? err.message : `unexpected error: ${errorMessage(err)}`;
    // Messages can echo what a caller sent, or come from an older server: no line of them drives the terminal.
    process.stderr.write(`anchorage: ${message.split('\n').map((l) => escapeControls(l)).join('\nanchorage: ')}\n`);
    return 1;
  }
}
