import { benchAgentScale } from './agent-scale.js';
import { benchMint } from './mint.js';
import { benchWorkload } from './workload.js';

const BENCHES: Record<string, () => Promise<void>> = {
  'agent-scale': benchAgentScale,
  mint: benchMint,
  workload: benchWorkload,
};

const name = process.argv[2];
const bench = name ? BENCHES[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}>`);
  process.exitCode = 2;
} else {
  await bench();
}
