import { action, type CommandGroup } from '../command.js';
import { need, untilSignal } from '../args.js';

/**
 * `anchorage helper -c helper.yaml`: writes this workload's SVID, key and
 * bundles to files for servers that read PEM files (nginx, HAProxy), and
 * has them reload on every rotation (helper/). Runs until SIGINT or SIGTERM,
 * or writes once and exits with `daemon_mode: false`.
 */
export const command: CommandGroup = {
  name: 'helper',
  summary: "Writes this workload's SVID, key and bundles to files and reloads a server on rotation.",
  actions: {},
  bare: action({
    name: 'helper',
    synopsis: '-c helper.yaml',
    summary: "Writes this workload's SVID, key and bundles to files for servers that read PEM files (nginx, HAProxy),\nand has them reload on every rotation; with daemon_mode: false, writes once and exits.",
    admin: false,
    flags: { config: { type: 'string', short: 'c', arg: 'FILE', help: 'the helper config (see the README)' } },
    async run(v) {
      const { loadHelperConfig } = await import('../../helper/config.js');
      const { createLogger } = await import('../../common/log.js');
      const cfg = loadHelperConfig(need(v.config, 'config'));
      const logger = createLogger('anchorage-helper', cfg.log_level);
      const { startHelper } = await import('../../helper/helper.js');
      const running = await startHelper(cfg, logger);
      if (!cfg.daemon_mode) return;
      logger.info({ cert_dir: cfg.cert_dir, generation: running.generation }, 'helper: ready');
      await untilSignal(logger, 'helper', () => running.close());
    },
  }),
};
