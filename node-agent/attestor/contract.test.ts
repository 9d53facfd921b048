import { silentLogger } from '../../common/log.js';
import { workloadAttestorContract } from '../../test/contract/workload-attestor.js';
import { createWorkloadAttestors, unixAttestorOptions } from './registry.js';
import { UnixWorkloadAttestor } from './unix.js';

// Every workload attestor, and the union the agent hands the Workload API
// (built as node-agent/run.ts builds it), keeps the interface's promises.
workloadAttestorContract('unix', () => new UnixWorkloadAttestor({ logger: silentLogger() }));
workloadAttestorContract('union of the configured attestors (unix)', () =>
  createWorkloadAttestors([{ type: 'unix', ...unixAttestorOptions.parse({}) }], { logger: silentLogger() }),
);
