import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/process.js';

// The build (tsconfig.json -> dist/) is what ships and what bench/ runs. Test
// code in it would make dist/ import vitest and fast-check, which are
// devDependencies, and would put suites next to the product. tsconfig.json
// leaves test/ out and compiles only the helpers bench/ imports; these tests
// list what `tsc -p tsconfig.json` really compiles and hold it to that.

const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
/** Suites, contract suites and the harnesses beside them: never in the build. */
const SUITE_DIRS = ['test/contract/', 'test/integration/', 'test/fault/', 'test/fuzz/', 'test/interop/', 'test/support/'];
const DEV_DEPENDENCIES = Object.keys((JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies);
const CLIENT = 'packages/client';
const CLIENT_DEPENDENCIES = Object.keys((JSON.parse(readFileSync(join(REPO, CLIENT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);

/** The repository's own files `tsc -p config` compiles, relative to the repository, with `/` separators. */
function compiledFiles(config: string): string[] {
  const r = spawnSync(process.execPath, [TSC, '-p', config, '--listFilesOnly'], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`tsc -p ${config} --listFilesOnly exited ${r.status}: ${r.stdout}${r.stderr}`);
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith(REPO + sep) && !l.includes(`${sep}node_modules${sep}`))
    .map((l) => relative(REPO, l).split(sep).join('/'))
    .sort();
}

/** The package a module specifier names (`@scope/name` or `name`), or undefined for relative and `node:` specifiers. */
function packageOf(spec: string): string | undefined {
  if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:')) return undefined;
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** `file: package` for every import (static, type-only, re-export or dynamic) of a devDependency. */
function devDependencyImports(files: string[]): string[] {
  const out: string[] = [];
  for (const f of files) {
    const info = ts.preProcessFile(readFileSync(join(REPO, f), 'utf8'), true, true);
    for (const imp of info.importedFiles) {
      const pkg = packageOf(imp.fileName);
      if (pkg !== undefined && DEV_DEPENDENCIES.includes(pkg)) out.push(`${f}: ${pkg}`);
    }
  }
  return out;
}

/**
 * `file: specifier` for every import of a client package file that its own
 * package.json does not provide: a package it does not depend on, or a relative
 * path out of the package (which works in the repository, not once installed).
 */
function foreignImportsOfClient(files: string[]): string[] {
  const out: string[] = [];
  for (const f of files) {
    const info = ts.preProcessFile(readFileSync(join(REPO, f), 'utf8'), true, true);
    for (const imp of info.importedFiles) {
      const spec = imp.fileName;
      if (spec.startsWith('node:')) continue;
      const pkg = packageOf(spec);
      const target = relative(REPO, join(REPO, dirname(f), spec)).split(sep).join('/');
      if (pkg === undefined ? !target.startsWith(`${CLIENT}/src/`) : !CLIENT_DEPENDENCIES.includes(pkg)) out.push(`${f}: ${spec}`);
    }
  }
  return out;
}

/** `file: specifier` for every import from a product file (not bench/, not test/) that reaches into test/. */
function productImportsOfTest(files: string[]): string[] {
  const out: string[] = [];
  for (const f of files.filter((f) => !f.startsWith('bench/') && !f.startsWith('test/'))) {
    const info = ts.preProcessFile(readFileSync(join(REPO, f), 'utf8'), true, true);
    for (const imp of info.importedFiles) {
      if (!imp.fileName.startsWith('.')) continue;
      const target = relative(REPO, join(REPO, dirname(f), imp.fileName)).split(sep).join('/');
      if (target.startsWith('test/')) out.push(`${f}: ${imp.fileName}`);
    }
  }
  return out;
}

/** Compiled files that are test code: suites anywhere, anything under a suite folder, anything in test/ outside test/helpers/. */
function testCodeIn(files: string[]): string[] {
  return files.filter((f) => f.endsWith('.test.ts') || SUITE_DIRS.some((d) => f.startsWith(d)) || (f.startsWith('test/') && !f.startsWith('test/helpers/')));
}

describe('the compiled build (tsconfig.json)', () => {
  let files: string[] = [];
  beforeAll(() => {
    files = compiledFiles('tsconfig.json');
  });

  it('compiles the product, bench/ and examples/, and not the client package (its own build)', () => {
    for (const f of ['cli/main.ts', 'ca/x509/csr-worker.ts', 'workload-api/server.ts', 'node-agent/run.ts', 'bench/run.ts', 'examples/demo-workload.ts']) {
      expect(files, f).toContain(f);
    }
    // The client is read through its declarations, as an installed package would be.
    expect(files.filter((f) => f.startsWith('packages/') && !(f.startsWith(`${CLIENT}/dist/`) && f.endsWith('.d.ts')))).toEqual([]);
    expect(files).toContain(`${CLIENT}/dist/index.d.ts`);
  });

  it('compiles no test suite, contract suite or suite harness, and from test/ only helpers bench/ imports', () => {
    expect(testCodeIn(files)).toEqual([]);
    // bench/ runs from dist/ and starts real processes and tokens through test/helpers/process.ts.
    expect(files).toContain('test/helpers/process.ts');
    // Test support such as TestCa lives in test/helpers/, where the product cannot pick it up.
    expect(productImportsOfTest(files)).toEqual([]);
  });

  it('has no compiled file importing a devDependency (vitest, fast-check, …)', () => {
    expect(DEV_DEPENDENCIES).toContain('vitest');
    expect(devDependencyImports(files)).toEqual([]);
  });
});

describe('the client package build (packages/client/tsconfig.json)', () => {
  let files: string[] = [];
  beforeAll(() => {
    files = compiledFiles(`${CLIENT}/tsconfig.json`);
  });

  it('compiles the client, the SPIFFE types and the Workload API proto, and no test', () => {
    for (const f of ['src/index.ts', 'src/spiffe/index.ts', 'src/common/errors.ts', 'src/proto/load.ts', 'src/proto/gen/workload.ts']) {
      expect(files, f).toContain(`${CLIENT}/${f}`);
    }
    expect(files.filter((f) => !f.startsWith(`${CLIENT}/src/`))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.test.ts'))).toEqual([]);
  });

  it('imports nothing but node: modules, its own files and the dependencies in its package.json', () => {
    expect(CLIENT_DEPENDENCIES).toContain('@grpc/grpc-js');
    expect(foreignImportsOfClient(files)).toEqual([]);
  });
});

describe('the checks themselves', () => {
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-build-hygiene-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('name the contract suite and the fuzz harness when a config compiles test/ again', () => {
    // What tsconfig.json did before test/ was left out: include test/ and only drop *.test.ts.
    const config = join(dir, 'tsconfig.with-test.json');
    writeFileSync(
      config,
      JSON.stringify({
        extends: join(REPO, 'tsconfig.json'),
        // Type packages are looked up from the config's folder, which here is a temp directory.
        compilerOptions: { typeRoots: [join(REPO, 'node_modules', '@types')] },
        include: ['common', 'ca', 'proto', 'cli', 'bench', 'test', 'workload-api', 'node-agent', 'examples'].map((d) => join(REPO, d)),
        exclude: [join(REPO, 'node_modules'), join(REPO, 'dist'), '**/*.test.ts', '**/testdata/**'],
      }),
    );
    const leaky = compiledFiles(config);
    expect(testCodeIn(leaky)).toEqual(expect.arrayContaining(['test/contract/keymanager.ts', 'test/fuzz/fuzz.ts', 'test/interop/harness.ts']));
    expect(devDependencyImports(leaky)).toEqual(expect.arrayContaining(['test/contract/keymanager.ts: vitest', 'test/fuzz/fuzz.ts: vitest', 'test/fuzz/fuzz.ts: fast-check']));
  });

  it('name a client file that imports the server or a package the client does not depend on', () => {
    expect(foreignImportsOfClient(['workload-api/server.ts'])).toEqual(
      expect.arrayContaining(['workload-api/server.ts: ../common/log.js', 'workload-api/server.ts: @grpc/reflection']),
    );
  });
});
