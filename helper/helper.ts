import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Backoff } from '../common/backoff.js';
import { AnchorageError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { WorkloadApiClient } from '../workload-api/client/client.js';
import type { JwtSvid, X509Context, X509Svid } from '../workload-api/client/types.js';
import { X509Source } from '../workload-api/client/x509source.js';
import type { HelperConfig } from './config.js';
import { jwtFile, sameFiles, x509Files } from './files.js';
import { GenerationWriter, type GenerationFile } from './generations.js';
import { Reloader, type ReloadAction } from './reload.js';

/** A JWT-SVID is fetched again at this fraction of its remaining lifetime. */
const JWT_REFRESH_FRACTION = 0.5;
/** …but never sooner than this after the last fetch, so a token with a very short life cannot spin the loop. */
const JWT_MIN_REFRESH_MS = 1000;

/** A running `anchorage helper`. */
export interface RunningHelper {
  /** The generation directory written last. */
  readonly generation: string;
  readonly reloader: Reloader;
  close(): Promise<void>;
}

function reloadAction(cfg: HelperConfig): ReloadAction {
  if (cfg.cmd !== undefined) return { kind: 'cmd', cmd: cfg.cmd, args: cfg.cmd_args, timeoutMs: cfg.cmd_timeout };
  if (cfg.pid_file_name !== undefined) return { kind: 'signal', pidFile: cfg.pid_file_name, signal: cfg.renew_signal! };
  return { kind: 'none' };
}

/**
 * The spiffe-helper job: keeps the caller's X509-SVID, key, bundles and
 * (optionally) JWT-SVIDs in cert_dir current, one consistent generation at a
 * time (generations.ts), and has the server reload after every X.509 change
 * (reload.ts). JWT-SVIDs are refreshed at half their remaining life and
 * written without a reload: their readers read the file per use.
 *
 * Resolves once the first generation is written (and, with `daemon_mode:
 * false`, reloaded once: then it is already closed). Rejects when cert_dir is
 * refused, or no SVID came within `startup_timeout` (with the last error).
 */
export async function startHelper(cfg: HelperConfig, log: Logger): Promise<RunningHelper> {
  const writer = new GenerationWriter(cfg.cert_dir, cfg.keep_generations);
  const client = new WorkloadApiClient({ address: cfg.agent_address, logger: log });
  const source = new X509Source({ client, logger: log, backoff: { initialMs: cfg.retry_initial, maxMs: cfg.retry_max } });
  const reloader = new Reloader(reloadAction(cfg), log, { initialMs: cfg.retry_initial, maxMs: cfg.retry_max });
  source.on('streamError', (err, info) => log.warn({ err: err.message, retry_in_ms: info.retryInMs, terminal: info.terminal }, 'helper: workload api stream error; the files stay as they are'));
  source.on('revoked', (err) =>
    log.error({ err: err.message }, 'helper: the agent withdrew this identity; the files stay until they expire, and are replaced if it comes back'),
  );

  let x509: GenerationFile[] = [];
  const jwts = new Map<string, GenerationFile>();
  const jwtTimers = new Set<NodeJS.Timeout>();
  let generation = '';
  let closed = false;
  /** Updates are handled once the first generation is written (the first one is read from the source itself). */
  let started = false;
  const writeBackoff = new Backoff({ initialMs: cfg.retry_initial, maxMs: cfg.retry_max });
  let writeRetry: NodeJS.Timeout | undefined;

  /** Writes a new generation from the X.509 files and the current JWT-SVIDs. */
  const writeGeneration = (files: GenerationFile[], since: number, reason: string): void => {
    generation = writer.write([...files, ...jwts.values()], [cfg.federated_bundles_dir_name]);
    log.info({ generation, reason, write_ms: Math.round(performance.now() - since) }, 'helper: wrote generation');
  };

  /** The SVID to write: the default one, or the one with the configured hint. */
  const chooseSvid = (ctx: X509Context): X509Svid => {
    const svid = cfg.hint === undefined ? ctx.svids[0] : ctx.svids.find((s) => s.hint === cfg.hint);
    if (svid === undefined) {
      throw new AnchorageError('not_found', `helper: no SVID of this workload has the hint ${JSON.stringify(cfg.hint)} (it has: ${ctx.svids.map((s) => JSON.stringify(s.hint)).join(', ')})`);
    }
    return svid;
  };

  const onX509 = (ctx: X509Context, since: number): void => {
    if (!started || closed) return;
    let svid: X509Svid;
    try {
      svid = chooseSvid(ctx);
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'helper: the files stay as they are');
      return;
    }
    const { files, skipped } = x509Files(cfg, svid, ctx);
    if (skipped.length > 0) log.warn({ trust_domains: skipped }, 'helper: trust domain names too long for a file name; their bundles are not written');
    if (sameFiles(files, x509)) return;
    clearTimeout(writeRetry);
    try {
      writeGeneration(files, since, `x509: ${svid.spiffeId.toString()} serial ${svid.chain[0]!.serialNumber}`);
    } catch (err) {
      // A full disk, a directory in the way: `current` still names the last complete generation.
      const delay = writeBackoff.next();
      log.error({ err: errorMessage(err), retry_in_ms: delay }, 'helper: cannot write the new files; the previous ones stay in place, retrying');
      writeRetry = setTimeout(() => {
        if (source.isReady) onX509(source.context(), performance.now());
      }, delay);
      return;
    }
    writeBackoff.reset();
    x509 = files;
    reloader.request(generation, since);
  };

  /** Fetches one JWT-SVID and schedules the next fetch (half its remaining life, or the backoff after a failure). */
  const refreshJwt = async (spec: HelperConfig['jwt_svids'][number], backoff: Backoff, write: boolean): Promise<void> => {
    let next: number;
    try {
      const since = performance.now();
      const svid: JwtSvid = await client.fetchJWTSVID([spec.jwt_audience, ...spec.jwt_extra_audiences], chooseSvid(source.context()).spiffeId, { timeoutMs: 30_000 });
      if (closed) return;
      jwts.set(spec.jwt_svid_file_name, jwtFile(spec.jwt_svid_file_name, svid));
      backoff.reset();
      next = Math.max(JWT_MIN_REFRESH_MS, (svid.expiresAt.getTime() - Date.now()) * JWT_REFRESH_FRACTION);
      if (write) writeGeneration(x509, since, `jwt: ${spec.jwt_svid_file_name} expires ${svid.expiresAt.toISOString()}`);
    } catch (err) {
      if (closed) return;
      if (!write) throw err;
      next = backoff.next();
      log.error({ err: errorMessage(err), file: spec.jwt_svid_file_name, retry_in_ms: next }, 'helper: cannot refresh a JWT-SVID; the old one stays until it expires');
    }
    const timer = setTimeout(() => {
      jwtTimers.delete(timer);
      void refreshJwt(spec, backoff, true);
    }, next);
    jwtTimers.add(timer);
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    clearTimeout(writeRetry);
    for (const t of jwtTimers) clearTimeout(t);
    await source.close();
    client.close();
    await reloader.close();
    writer.close();
  };

  source.on('update', (ctx) => onX509(ctx, performance.now()));
  try {
    const first = performance.now();
    await source.ready({ timeoutMs: cfg.startup_timeout }).catch((err: unknown) => {
      const addr = client.address;
      if (addr.network === 'unix' && !existsSync(addr.path)) {
        throw new AnchorageError('unavailable', `helper: there is no Workload API socket at ${addr.path} (is the agent running, and is agent_address right?): ${errorMessage(err)}`, { cause: err });
      }
      throw err;
    });
    // The first generation carries every file, JWT-SVIDs included.
    for (const spec of cfg.jwt_svids) await refreshJwt(spec, new Backoff({ initialMs: cfg.retry_initial, maxMs: cfg.retry_max }), false);
    // Read after the JWT fetches, so an update that came meanwhile is in it.
    const ctx = source.context();
    const svid = chooseSvid(ctx);
    x509 = x509Files(cfg, svid, ctx).files;
    writeGeneration(x509, first, `first: ${svid.spiffeId.toString()} serial ${svid.chain[0]!.serialNumber}`);
    started = true;
    if (!cfg.daemon_mode) {
      await reloader.once();
      await close();
    } else {
      reloader.request(generation, first);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    get generation() {
      return generation;
    },
    reloader,
    close,
  };
}
