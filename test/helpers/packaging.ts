// The packages as a user gets them: `npm pack` of the repository or of a
// workspace, and an install of the tarball into a fresh project or a fresh
// global prefix. Used by test/integration/packaging.test.ts and
// bench/client-install.ts (so: no vitest here).
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO } from './process.js';

/**
 * npm's environment: native addons build against the headers of the Node that
 * runs them (nothing may download headers on these machines), as in
 * scripts/setup.sh; no update notices.
 */
export function npmEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_update_notifier: 'false', ...extra };
  if (!env.npm_config_nodedir && existsSync('/usr/include/node/node.h')) env.npm_config_nodedir = '/usr';
  return env;
}

/** Runs npm, throwing with its output when it fails. */
export function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv = npmEnv()): string {
  const r = spawnSync('npm', args, { cwd, env, encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** `npm pack` of the repository (workspace undefined) or of one workspace, into the empty folder `dest`; the tarball's path. */
export function pack(dest: string, workspace?: string): string {
  npm(['pack', '--pack-destination', dest, '--loglevel=warn', ...(workspace ? ['--workspace', workspace] : [])], REPO);
  const made = readdirSync(dest).filter((f) => f.endsWith('.tgz'));
  if (made.length !== 1) throw new Error(`npm pack: expected one tarball in ${dest}, found ${made.join(', ') || 'none'}`);
  return join(dest, made[0]!);
}

/** Installs `tarball` into `dir`, made a fresh, empty ESM project first; the milliseconds it took. */
export function installIntoProject(dir: string, tarball: string, npmArgs: string[] = []): number {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'probe', version: '1.0.0', private: true, type: 'module' }));
  const start = performance.now();
  npm(['install', '--no-audit', '--no-fund', '--loglevel=warn', ...npmArgs, tarball], dir);
  return performance.now() - start;
}

/** Every file below `dir`, relative to it, without following links. */
function* walk(dir: string, base = dir): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory()) yield* walk(path, base);
    else yield relative(base, path);
  }
}

/**
 * What makes a tree native: compiled addons (`*.node`), node-gyp projects
 * (`binding.gyp`) and packages that declare one (`"gypfile": true`), as paths
 * relative to `dir`.
 */
export function nativeAddonsIn(dir: string): string[] {
  const out: string[] = [];
  for (const f of walk(dir)) {
    const name = f.split('/').pop()!;
    if (name.endsWith('.node') || name === 'binding.gyp') out.push(f);
    else if (name === 'package.json' && (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { gypfile?: boolean }).gypfile === true) out.push(`${f} (gypfile)`);
  }
  return out.sort();
}

/** Bytes of the regular files below `dir` (their sizes, not disk blocks), and how many there are. */
export function treeSize(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const f of walk(dir)) {
    const st = lstatSync(join(dir, f));
    if (st.isFile()) {
      bytes += st.size;
      files++;
    }
  }
  return { bytes, files };
}

/** The packages npm installed below `dir`/node_modules (nested ones included), as `name@version`. */
export function installedPackages(dir: string): string[] {
  const out: string[] = [];
  for (const f of walk(join(dir, 'node_modules'))) {
    // node_modules/<name>/package.json or node_modules/@scope/<name>/package.json, at any depth.
    const parts = f.split('/');
    const i = parts.lastIndexOf('node_modules');
    const rest = parts.slice(i + 1);
    const isRoot = rest.length === 2 || (rest.length === 3 && rest[0]!.startsWith('@'));
    if (parts.at(-1) !== 'package.json' || !isRoot) continue;
    const pkg = JSON.parse(readFileSync(join(dir, 'node_modules', f), 'utf8')) as { name?: string; version?: string };
    if (pkg.name && pkg.version) out.push(`${pkg.name}@${pkg.version}`);
  }
  return out.sort();
}
