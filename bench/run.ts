import { benchApiMint } from './api-mint.js';
import { benchCli } from './cli.js';
import { benchCluster } from './cluster.js';
import { benchHelper } from './helper.js';
import { benchAttest } from './attest.js';
import { benchDatastore } from './datastore.js';
import { benchClientInstall } from './client-install.js';
import { benchMetricsHooks } from './metrics-hooks.js';
import { benchAgentScale } from './agent-scale.js';
import { benchMint } from './mint.js';
import { benchScale } from './scale.js';
import { benchSds } from './sds.js';
import { benchTaint } from './taint.js';
import { benchWorkload } from './workload.js';
import { benchWorkloadMetrics } from './workload-metrics.js';

const BENCHES: Record<string, () => Promise<void>> = {
  'api-mint': benchApiMint,
  cli: benchCli,
  cluster: benchCluster,
  helper: benchHelper,
  attest: benchAttest,
  datastore: benchDatastore,
  'client-install': benchClientInstall,
  'metrics-hooks': benchMetricsHooks,
  'agent-scale': benchAgentScale,
  mint: benchMint,
  workload: benchWorkload,
  'workload-metrics': benchWorkloadMetrics,
  scale: benchScale,
  sds: benchSds,
  taint: benchTaint,
};

const name = process.argv[2];
const bench = name ? BENCHES[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}>`);
  process.exitCode = 2;
} else {
  await bench();
}
