// The go-spiffe interop program (test/interop/go/): the Go toolchain it
// needs, and the binary built once into the build cache. Shared by the
// go-spiffe suite and the tests that ask go-spiffe to validate an SVID
// (test/integration/authority.test.ts).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, goEnv, INTEROP_DIR, run, versionAtLeast } from './harness.js';

export const GO_DIR = join(INTEROP_DIR, 'go');

/** The `go` line of test/interop/go/go.mod, e.g. "1.24.0". */
export function requiredGoVersion(): string {
  const m = /^go\s+(\S+)\s*$/m.exec(readFileSync(join(GO_DIR, 'go.mod'), 'utf8'));
  if (!m) throw new Error('interop: test/interop/go/go.mod has no go line');
  return m[1]!;
}

/** The go-spiffe version go.mod asks for, e.g. "v2.9.0". */
export function requiredGoSpiffeVersion(): string {
  const m = /github\.com\/spiffe\/go-spiffe\/v2 (v\S+)/.exec(readFileSync(join(GO_DIR, 'go.mod'), 'utf8'));
  if (!m) throw new Error('interop: test/interop/go/go.mod does not require go-spiffe v2');
  return m[1]!;
}

/** The Go toolchain's version ("go1.24.1"), or why the suite cannot run here. */
export function goToolchain(): { version: string; unusable?: undefined } | { unusable: string } {
  const r = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8', env: goEnv(), timeout: 30_000 });
  if (r.error) return { unusable: 'Go toolchain not found' };
  if (r.status !== 0) return { unusable: `"go env GOVERSION" failed: ${r.stderr.trim()}` };
  const have = r.stdout.trim();
  const need = requiredGoVersion();
  if (!versionAtLeast(have, need)) return { unusable: `${have} is older than go${need}, which go-spiffe ${requiredGoSpiffeVersion()} needs` };
  return { version: have };
}


export const PROGRAM = 'gospiffe-interop';

/** What the binary is built from: the Go version and every file go build reads (go.mod, go.sum, *.go). */
function sourceHash(goVersion: string): string {
  const h = createHash('sha256');
  h.update(`${goVersion}\0`);
  const files = readdirSync(GO_DIR)
    .filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go'))
    .sort();
  for (const f of files) {
    h.update(`${f}\0`);
    h.update(readFileSync(join(GO_DIR, f)));
    h.update('\0');
  }
  return h.digest('hex');
}

/**
 * The program in the build cache (test/interop/.cache/go), built only when
 * its sources or the Go version changed since the last build.
 */
export async function cachedBinary(goVersion: string): Promise<{ path: string; built: boolean }> {
  const dir = cacheDir('go');
  const path = join(dir, PROGRAM);
  const hashFile = join(dir, `${PROGRAM}.sha256`);
  const hash = sourceHash(goVersion);
  if (existsSync(path) && existsSync(hashFile) && readFileSync(hashFile, 'utf8').trim() === hash) return { path, built: false };
  // Built under a name of its own and renamed: a concurrent run never sees half a binary.
  const tmp = join(dir, `${PROGRAM}.${process.pid}.tmp`);
  // -buildvcs=false: the module sits inside this repository; its VCS state is irrelevant and needs git.
  const build = await run('go', ['build', '-buildvcs=false', '-o', tmp, '.'], { cwd: GO_DIR, env: goEnv(), timeoutMs: 290_000 });
  if (build.code !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`interop: go build failed (exit ${build.code}, signal ${build.signal}):\n${build.stderr}${build.stdout}`);
  }
  renameSync(tmp, path);
  writeFileSync(hashFile, `${hash}\n`);
  return { path, built: true };
}
