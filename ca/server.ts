import { existsSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import { lockDataDir } from '../common/lockfile.js';
import { checkPrivateDir } from '../common/safe-file.js';
import { checkDescriptorBudget } from '../common/tcp-guard.js';
import type { Logger } from '../common/log.js';
import { loadAdminProto, loadAgentProto } from '../proto/load.js';
import { listenAgentApi } from './agentapi/listener.js';
import { agentHandlers } from './agentapi/service.js';
import { NodeAttestorRegistry } from './nodeattestor/registry.js';
import { ServerTlsIdentity } from './agentapi/tls-identity.js';
import { ChangeFeed } from './changes.js';
import { startCluster } from './cluster/index.js';
import { resolveServerId } from './server-id.js';
import { adminHandlers } from './admin/service.js';
import { listenAdmin } from './admin/listener.js';
import { AuditLog } from './audit/log.js';
import { BudgetedRecorder } from './audit/limited.js';
import { ATTEST_REFUSAL_BUDGET } from './agentapi/attest.js';
import { tcpLimits, type ServerConfig } from './config.js';
import type { DataStore } from './datastore/DataStore.js';
import { openDataStore } from './datastore/registry.js';
import { FederationClient } from './federation/client.js';
import { BundleEndpoint, loadWebIdentity, type WebIdentity } from './federation/endpoint.js';
import type { KeyManager } from './keymanager/KeyManager.js';
import { openKeyManager } from './keymanager/registry.js';
import { CaManager } from './manager.js';
import { ServerMetrics } from './metrics.js';
import { Minter } from './minter.js';
import { loadRootOfTrust } from './root.js';
import { CsrVerifierPool } from './x509/csr-pool.js';

const NO_CHANNELZ: grpc.ServerOptions = { 'grpc.enable_channelz': 0 };

export interface RunningServer {
  readonly config: ServerConfig;
  readonly ca: CaManager;
  readonly minter: Minter;
  readonly datastore: DataStore;
  readonly keyManager: KeyManager;
  /** The tamper-evident audit log (ca/audit/). */
  readonly audit: AuditLog;
  /** The port the agent API listens on (bind_address may ask for port 0). */
  readonly agentPort: number;
  readonly feed: ChangeFeed;
  readonly tlsIdentity: ServerTlsIdentity;
  /** The port of the SPIFFE bundle endpoint, when `federation.bundle_endpoint` is configured. */
  readonly bundleEndpointPort: number | undefined;
  /** The port of /metrics, /live and /ready, when `metrics` is configured. */
  readonly metricsPort: number | undefined;
  close(): Promise<void>;
}

export interface ServerOptions {
  logger: Logger;
  /** Milliseconds since the epoch; tests may pass a fake clock. */
  now?: () => number;
  /** Largest SyncAuthorizedEntries message, bytes (ca/agentapi/sync-chunks.ts); tests make it small. */
  syncMessageLimit?: number;
}

function ensurePrivateDir(dir: string, log: Logger): void {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return;
  }
  const st = statSync(dir);
  if (!st.isDirectory()) throw new AnchorageError('invalid_argument', `server: ${dir} is not a directory`);
  if ((st.mode & 0o077) !== 0) {
    log.warn({ dir, mode: (st.mode & 0o777).toString(8) }, 'server: directory is accessible to group or others; 0700 is expected');
  }
}

/** Removes a socket file left by a dead server; refuses if a live server answers on it. */
async function clearStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new AnchorageError('failed_precondition', `server: ${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new AnchorageError('failed_precondition', `server: another server is already listening on ${path}`);
  unlinkSync(path);
}


/**
 * Starts the server: datastore, key manager, root of trust, CA (resuming the
 * journal), then the admin API. Anything that fails closes what was opened.
 */
export async function startServer(cfg: ServerConfig, opts: ServerOptions): Promise<RunningServer> {
  const log = opts.logger;
  const closers: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const c of closers.reverse()) {
      try {
        await c();
      } catch (err) {
        log.warn({ err: errorMessage(err) }, 'server: error while closing');
      }
    }
  };
  try {
    // Everything the server creates (datastore, sockets, keys on disk) is private.
    process.umask(0o077);
    // The https_web certificate and key are read first: a bad file fails the
    // start before anything is opened.
    const endpointCfg = cfg.federation.bundle_endpoint;
    let webIdentity: WebIdentity | undefined;
    if (endpointCfg?.profile === 'https_web') webIdentity = loadWebIdentity(endpointCfg.cert_file!, endpointCfg.key_file!, log);
    // The data dir holds the datastore (and disk keys): refused unless it is a
    // real directory of our uid that nobody else can write to.
    if ((checkPrivateDir(cfg.data_dir, 'server').mode & 0o077) !== 0) ensurePrivateDir(cfg.data_dir, log);
    // The socket's directory too: whoever else could write there could put
    // their own socket in its place, and every operator command would go to it.
    const socketDir = dirname(cfg.admin_socket);
    if ((checkPrivateDir(socketDir, 'server', 'admin_socket directory').mode & 0o077) !== 0) ensurePrivateDir(socketDir, log);
    // Two servers on one data dir would both rotate the CA: refuse before touching anything.
    const releaseLock = lockDataDir(cfg.data_dir, 'server');
    closers.push(releaseLock);
    await clearStaleSocket(cfg.admin_socket);

    // Listening before the rest starts: /live answers and /ready says why not yet; a bad address fails the start early.
    const metrics = cfg.metrics ? new ServerMetrics() : undefined;
    let metricsPort: number | undefined;
    if (metrics && cfg.metrics) {
      const http = await metrics.listen(cfg.metrics.address, log);
      closers.push(() => http.close());
      metricsPort = http.port;
    }

    const datastore = await openDataStore(cfg.datastore, { logger: log });
    closers.push(() => datastore.close());

    const pinned = await datastore.getMeta('trust_domain');
    if (pinned && pinned !== cfg.trust_domain.name) {
      throw new AnchorageError(
        'failed_precondition',
        `server: trust_domain is "${cfg.trust_domain.name}" but ${cfg.data_dir} belongs to trust domain "${pinned}"`,
      );
    }
    if (!pinned) await datastore.setMeta('trust_domain', cfg.trust_domain.name);

    const keyManager = await openKeyManager(cfg.key_manager, { configPath: 'key_manager', logger: log });
    closers.push(() => keyManager.close());
    let rootKeyManager = keyManager;
    if (cfg.ca.root.key_manager) {
      rootKeyManager = await openKeyManager(cfg.ca.root.key_manager, { configPath: 'ca.root.key_manager', logger: log });
      const rkm = rootKeyManager;
      closers.push(() => rkm.close());
    }

    const now = opts.now ?? Date.now;
    // Several servers on one PostgreSQL each own their intermediates and JWT keys.
    const serverId = resolveServerId({ configured: cfg.server_id, shared: cfg.datastore.type === 'postgres', dataDir: cfg.data_dir });
    // The audit log, before anything that records into it; closed (flushed) after all of them.
    // Its checkpoint key is in the CA's key manager; its head file beside the datastore, outside it.
    const audit = await AuditLog.open({
      datastore,
      keyManager,
      trustDomain: cfg.trust_domain.name,
      logger: log,
      now,
      headFile: join(cfg.data_dir, 'audit-head.json'),
      // Several servers may share one PostgreSQL database, and so one chain.
      sharedWriters: cfg.datastore.type === 'postgres',
    });
    closers.push(() => audit.close());
    // Refused attestations: recorded within a budget (a remote peer causes them at will); the count over it at shutdown.
    const attestRefusals = new BudgetedRecorder(audit, { ...ATTEST_REFUSAL_BUDGET, suppressedType: 'agent.attestation_refusals_suppressed', logger: log, now });
    closers.push(() => attestRefusals.summarize());
    const root = await loadRootOfTrust(cfg.ca.root, {
      trustDomain: cfg.trust_domain,
      datastore,
      keyManager: rootKeyManager,
      now,
      logger: log,
      defaultKeyType: cfg.ca.key_type,
    });
    const ca = new CaManager({
      trustDomain: cfg.trust_domain,
      keyManager,
      root,
      datastore,
      caTtl: cfg.ca.ttl,
      keyType: cfg.ca.key_type,
      bundleRefreshHint: cfg.bundle_refresh_hint,
      now,
      logger: log,
      autoRotate: true,
      serverId,
      ...(cfg.ca.root.type === 'self-signed'
        ? {
            rootRotation: {
              keyManager: rootKeyManager,
              keyType: cfg.ca.root.key_type ?? cfg.ca.key_type,
              ttl: cfg.ca.root.ttl,
              labelBase: cfg.ca.root.key_label ?? `anchorage-root-${cfg.trust_domain.name}`,
            },
          }
        : {}),
      audit,
    });
    await ca.start();
    closers.push(() => ca.close());
    const csrVerifier = new CsrVerifierPool();
    closers.push(() => csrVerifier.close());
    const minter = new Minter({ ca, x509SvidTtl: cfg.x509_svid_ttl, jwtSvidTtl: cfg.jwt_svid_ttl, now, csrVerifier, metrics, audit });
    metrics?.attach({ ca, datastore, keyManagers: [...new Set([keyManager, rootKeyManager])], trustDomain: cfg.trust_domain, now, logger: log });

    const feed = new ChangeFeed();
    // PostgreSQL: changes made through other servers reach this one's agents (ca/cluster/); SQLite: undefined.
    const cluster = await startCluster(datastore, feed, { logger: log, reconcileIntervalMs: cfg.datastore.type === 'postgres' && cfg.datastore.change_reconcile_interval !== undefined ? cfg.datastore.change_reconcile_interval * 1000 : undefined });
    if (cluster) closers.push(() => cluster.close());
    // The CA journal and bundle are shared too: what one server changes, the others reload.
    const reloadCa = () => void ca.reload().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'ca: reloading after a change made elsewhere failed'));
    const announceCa = () => feed.caChanged();
    ca.on('journal', announceCa);
    feed.on('ca-remote', reloadCa);
    feed.on('everything', reloadCa);
    closers.push(() => {
      ca.off('journal', announceCa);
      feed.off('ca-remote', reloadCa);
      feed.off('everything', reloadCa);
    });
    const refresh = cfg.federation.refresh;
    const federation = new FederationClient({
      datastore,
      feed,
      logger: log,
      bounds: { min: refresh.min_interval, max: refresh.max_interval, fallback: refresh.default_interval },
      timeoutMs: refresh.fetch_timeout * 1000,
      now,
      metrics,
      lease: cluster?.lease,
      audit,
    });
    closers.push(() => federation.close());
    // No channelz on either server: nothing reads it, and its bookkeeping is
    // per call (admin mints) and per connection (agents), as on the Workload API.
    const admin = new grpc.Server(NO_CHANNELZ);
    // Accepted by us, so that each caller's uid/gid/pid can be read at accept (ca/admin/listener.ts).
    let adminListener: Awaited<ReturnType<typeof listenAdmin>> | undefined;
    admin.addService(
      loadAdminProto().anchorage.admin.v1.Admin.service,
      adminHandlers({
        datastore,
        feed,
        ca,
        minter,
        caTtl: cfg.ca.ttl,
        keyManager,
        rootKeyManager: cfg.ca.root.type === 'self-signed' ? rootKeyManager : undefined,
        federation,
        now,
        logger: log,
        audit,
        actorOf: (call) => adminListener?.actorOf(call),
      }),
    );
    adminListener = await listenAdmin(admin, cfg.admin_socket, cfg.admin_socket_mode, log);
    const adminConns = adminListener;
    closers.push(() => adminConns.close());
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          admin.tryShutdown(() => resolve());
          setTimeout(() => {
            admin.forceShutdown();
            resolve();
          }, 2000).unref();
        }),
    );
    closers.push(() => {
      try {
        unlinkSync(cfg.admin_socket);
      } catch {
        /* already gone */
      }
    });

    // The agent API: TLS with the server's own SVID; agents authenticate with theirs.
    const tlsIdentity = new ServerTlsIdentity({ ca, minter, logger: log });
    await tlsIdentity.start();
    closers.push(() => tlsIdentity.close());
    const agentServer = new grpc.Server(NO_CHANNELZ);
    agentServer.addService(
      loadAgentProto().anchorage.agent.v1.Agent.service,
      agentHandlers({
        datastore,
        ca,
        minter,
        feed,
        agentSvidTtl: cfg.agent_svid_ttl,
        now,
        logger: log,
        // The attestors count in seconds, as the datastore does; `now` here is milliseconds.
        nodeAttestors: NodeAttestorRegistry.fromConfig(cfg.node_attestors, { datastore, now: () => Math.floor(now() / 1000) }),
        metrics,
        ...(opts.syncMessageLimit !== undefined ? { syncMessageLimit: opts.syncMessageLimit } : {}),
        audit,
        attestRefusals,
      }),
    );
    // Our own TCP listener (handshake timeout, connection caps), not bindAsync.
    checkDescriptorBudget(cfg.agent_api.max_connections + (endpointCfg?.max_connections ?? 0), log);
    const agentListener = await listenAgentApi(
      agentServer,
      grpc.experimental.createCertificateProviderServerCredentials(tlsIdentity, tlsIdentity, false),
      cfg.bind_address,
      tcpLimits(cfg.agent_api),
      log,
    );
    const agentPort = agentListener.port;
    closers.push(() => agentListener.close());
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          agentServer.tryShutdown(() => resolve());
          setTimeout(() => {
            agentServer.forceShutdown();
            resolve();
          }, 2000).unref();
        }),
    );
    closers.push(() => agentListener.stopAccepting());

    // The SPIFFE bundle endpoint, for trust domains that federate with ours.
    let bundleEndpointPort: number | undefined;
    if (endpointCfg) {
      const endpoint = new BundleEndpoint({ config: endpointCfg, ca, tlsIdentity, webIdentity, logger: log });
      closers.push(() => endpoint.close());
      bundleEndpointPort = await endpoint.start();
      log.info(
        {
          address: `${endpointCfg.address.slice(0, endpointCfg.address.lastIndexOf(':'))}:${bundleEndpointPort}`,
          profile: endpointCfg.profile,
          refreshHint: endpointCfg.refresh_hint,
          ...(endpointCfg.profile === 'https_spiffe' ? { spiffeId: tlsIdentity.spiffeId.toString() } : { certFile: endpointCfg.cert_file }),
        },
        'federation: bundle endpoint listening',
      );
    }

    // Peers' bundles, fetched from their bundle endpoints (federation relationships).
    await federation.start();

    const rootInfo = root.certInfo;
    log.info(
      {
        trustDomain: cfg.trust_domain.name,
        keyManager: keyManager.kind,
        ...(serverId ? { serverId } : {}),
        root: { kind: root.kind, notAfter: rootInfo.validTo, sha256: rootInfo.fingerprint256 },
        intermediateNotAfter: new Date(ca.activeX509().notAfter * 1000).toISOString(),
        adminSocket: cfg.admin_socket,
        agentApi: `${cfg.bind_address.slice(0, cfg.bind_address.lastIndexOf(':'))}:${agentPort}`,
      },
      'server: ready',
    );
    let closed = false;
    return {
      config: cfg,
      ca,
      minter,
      datastore,
      keyManager,
      audit,
      agentPort,
      feed,
      tlsIdentity,
      bundleEndpointPort,
      metricsPort,
      close: async () => {
        if (closed) return;
        closed = true;
        // Closers were pushed in start order; close runs them in reverse.
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
