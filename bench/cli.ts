import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, cli, startServerProcess, tempDir, type ServerProcess } from '../test/helpers/process.js';
import { createSoftHsmToken, writePkcs11ServerConfig } from '../test/helpers/softhsm.js';

/**
 * Start time of the `anchorage` command: the wall time of one whole process
 * (node start, imports, the call, exit), as an operator's shell sees it, for
 * `help` (no server), `entry list` and `x509 mint` against a real server on
 * SoftHSM2; p50 and p90 of RUNS runs, beside those of a bare `node -e ""`.
 */

const TD = 'bench.test';
const RUNS = Number(process.env.BENCH_CLI_RUNS ?? 30);
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

interface Case {
  name: string;
  argv: string[];
  ms: number[];
}

/**
 * Wall time of each command, in ms, RUNS rounds of one run of each in turn,
 * so that the load of a shared machine weighs on all alike; every run must
 * succeed. `node -e ""` runs among them: the floor no command can go under.
 */
function timeAll(cases: Case[], env: NodeJS.ProcessEnv): void {
  for (let i = 0; i < RUNS; i++) {
    for (const c of cases) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, c.argv, { env, encoding: 'utf8', timeout: 60_000 });
      c.ms.push(performance.now() - t0);
      if (r.status !== 0) throw new Error(`bench cli: ${c.name} exited with ${r.status}: ${r.stderr}`);
    }
  }
}

export async function benchCli(): Promise<void> {
  const hsm = createSoftHsmToken('bench', '1357');
  const tmp = tempDir('anchorage-bench-cli-');
  const env = { ...hsm.env };
  const socket = join(tmp.dir, 'admin.sock');
  const config = writePkcs11ServerConfig(hsm, { dir: tmp.dir, trustDomain: TD, socket });
  let server: ServerProcess | undefined;
  try {
    server = await startServerProcess(config, socket, env);
    // A realistic list: a few entries to print.
    for (let i = 0; i < 5; i++) {
      const r = cli(['entry', 'create', '--socket', socket, '--spiffe-id', `spiffe://${TD}/w${i}`, '--parent-id', `spiffe://${TD}/node`, '--selector', `unix:uid:${1000 + i}`], env);
      if (r.code !== 0) throw new Error(`bench cli: entry create: ${r.stderr}`);
    }
    const outDir = join(tmp.dir, 'svid');
    mkdirSync(outDir, { mode: 0o700 });
    const cases: Case[] = [
      { name: 'node -e ""', argv: ['-e', ''], ms: [] },
      { name: 'anchorage help', argv: [BIN, 'help'], ms: [] },
      { name: 'anchorage entry list', argv: [BIN, 'entry', 'list', '--socket', socket], ms: [] },
      { name: 'anchorage x509 mint', argv: [BIN, 'x509', 'mint', '--socket', socket, '--spiffe-id', `spiffe://${TD}/cli`, '--out-dir', outDir], ms: [] },
    ];
    timeAll(cases, env);
    const [bare, help, list, mint] = cases.map((c) => ({ p50: round(percentile(c.ms, 50)), p90: round(percentile(c.ms, 90)) }));
    const result = {
      date: new Date().toISOString(),
      runs: RUNS,
      node_bare_p50_ms: bare!.p50,
      help_p50_ms: help!.p50,
      help_p90_ms: help!.p90,
      entry_list_p50_ms: list!.p50,
      entry_list_p90_ms: list!.p90,
      x509_mint_p50_ms: mint!.p50,
      x509_mint_p90_ms: mint!.p90,
      // What the command adds to node's own start: the part this code controls.
      help_over_node_p50_ms: round(help!.p50 - bare!.p50),
      entry_list_over_node_p50_ms: round(list!.p50 - bare!.p50),
      x509_mint_over_node_p50_ms: round(mint!.p50 - bare!.p50),
      targets: { entry_list_p50_ms: '< 100', x509_mint_p50_ms: '< 100' },
    };
    for (const [i, c] of cases.entries()) {
      const p = [bare, help, list, mint][i]!;
      console.log(`${c.name.padEnd(22)} p50 ${String(p.p50).padStart(6)} ms  p90 ${String(p.p90).padStart(6)} ms`);
    }
    mkdirSync(join('bench', 'results'), { recursive: true });
    writeFileSync(join('bench', 'results', 'cli.json'), JSON.stringify(result, null, 2) + '\n');
  } finally {
    await server?.kill('SIGTERM');
    tmp.cleanup();
    hsm.cleanup();
  }
}
