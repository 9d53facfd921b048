import { action, type CommandGroup } from '../command.js';
import { need, untilSignal } from '../args.js';

export const command: CommandGroup = {
  name: 'server',
  summary: 'The Anchorage server: the CA, the agent API and the admin API.',
  actions: {
    run: action({
      name: 'server run',
      synopsis: '-c server.yaml',
      summary: 'Runs the server until SIGINT or SIGTERM, then closes it cleanly.',
      admin: false,
      flags: { config: { type: 'string', short: 'c', arg: 'FILE', help: 'the server config (see the README)' } },
      async run(v) {
        const { loadServerConfig } = await import('../../ca/config.js');
        const { createLogger } = await import('../../common/log.js');
        const cfg = loadServerConfig(need(v.config, 'config'));
        const logger = createLogger('anchorage-server', cfg.log_level, cfg.log_format);
        const { startServer } = await import('../../ca/server.js');
        const server = await startServer(cfg, { logger });
        await untilSignal(logger, 'server', () => server.close());
      },
    }),
  },
};
