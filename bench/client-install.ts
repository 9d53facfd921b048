// `npm run bench -- client-install`: what installing @anchorage/client costs a
// workload. Packs the workspace, then installs the tarball into fresh empty
// projects: "cold" with an empty npm cache (every dependency downloaded from
// the registry, as on a new machine), "warm" with the cache the cold run
// filled. Prints the figures and writes bench/results/client-install.json.
import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { installedPackages, installIntoProject, nativeAddonsIn, pack, treeSize } from '../test/helpers/packaging.js';
import { tempDir } from '../test/helpers/process.js';

const RUNS = 3;

const round = (n: number, d = 1): number => Math.round(n * 10 ** d) / 10 ** d;

export async function benchClientInstall(): Promise<void> {
  const tmp = tempDir('anchorage-bench-client-install-');
  try {
    mkdirSync(join(tmp.dir, 'pack'));
    const tarball = pack(join(tmp.dir, 'pack'), '@anchorage/client');
    const coldMs: number[] = [];
    const warmMs: number[] = [];
    let project = '';
    for (let i = 0; i < RUNS; i++) {
      const cache = join(tmp.dir, `cache-${i}`);
      project = join(tmp.dir, `cold-${i}`);
      mkdirSync(project);
      coldMs.push(installIntoProject(project, tarball, ['--cache', cache]));
      console.log(`cold install ${i + 1}: ${round(coldMs.at(-1)! / 1000)} s`);
      const warm = join(tmp.dir, `warm-${i}`);
      mkdirSync(warm);
      warmMs.push(installIntoProject(warm, tarball, ['--cache', cache, '--prefer-offline']));
      console.log(`warm install ${i + 1}: ${round(warmMs.at(-1)! / 1000)} s`);
    }
    const size = treeSize(join(project, 'node_modules'));
    const packages = installedPackages(project);
    const native = nativeAddonsIn(join(project, 'node_modules'));
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const result = {
      date: new Date().toISOString(),
      cores: cpus().length,
      runs: RUNS,
      cold_install_s: coldMs.map((ms) => round(ms / 1000)),
      cold_install_median_s: round(median(coldMs) / 1000),
      warm_install_s: warmMs.map((ms) => round(ms / 1000)),
      warm_install_median_s: round(median(warmMs) / 1000),
      installed_mb: round(size.bytes / 1e6),
      installed_files: size.files,
      installed_packages: packages.length,
      native_addons: native,
      packages,
    };
    console.log(`installed: ${result.installed_mb} MB in ${size.files} files, ${packages.length} packages, native addons: ${native.length}`);
    console.log(`cold install median ${result.cold_install_median_s} s, warm ${result.warm_install_median_s} s`);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/client-install.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/client-install.json');
  } finally {
    tmp.cleanup();
  }
}
