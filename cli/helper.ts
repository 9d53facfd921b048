import { createLogger } from '../common/log.js';
import { loadHelperConfig } from '../helper/config.js';
import { need, parse } from './args.js';

/**
 * `anchorage helper -c helper.yaml`: writes this workload's SVID, key and
 * bundles to files for servers that read PEM files (nginx, HAProxy), and
 * has them reload on every rotation (helper/). Runs until SIGINT or SIGTERM,
 * or writes once and exits with `daemon_mode: false`.
 */
export async function helperCommand(args: string[]): Promise<void> {
  const v = parse(args, {});
  const cfg = loadHelperConfig(need(v.config, 'config'));
  const logger = createLogger('anchorage-helper', cfg.log_level);
  const { startHelper } = await import('../helper/helper.js');
  const running = await startHelper(cfg, logger);
  if (!cfg.daemon_mode) return;
  logger.info({ cert_dir: cfg.cert_dir, generation: running.generation }, 'helper: ready');
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'helper: shutting down');
      running.close().then(resolve, resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
