import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lacks } from '../helpers/needs.js';
import { installedPackages, installIntoProject, nativeAddonsIn, npm, pack } from '../helpers/packaging.js';
import { BIN, REPO, tempDir } from '../helpers/process.js';
import { softHsmAvailable } from '../helpers/softhsm.js';
import { startTrustDomain, waitForSvid, type RealTrustDomain } from '../helpers/trust-domain.js';
import { parseServerConfig } from '../../ca/config.js';
import { DEFAULT_SOCKET_PATH, parseAgentConfig } from '../../node-agent/config.js';

// Both packages as a user gets them: `npm pack`, then the client installed
// from its tarball into a fresh project and `anchorage` installed globally
// from its tarball into a fresh prefix (compiling its native addons: about a
// minute). The client then gets its X509-SVID from a trust domain run by the
// installed `anchorage`, and the systemd units it ships pass
// `systemd-analyze verify` against the installed command.

const TD = 'packaging.test';
const WORKLOAD_ID = `spiffe://${TD}/workload`;
const CLIENT_CHILD_TIMEOUT_MS = 60_000;

/** The README's example (the js block that starts with `// fetch-svid.mjs`), verbatim. */
function readmeExample(): string {
  const readme = readFileSync(join(REPO, 'packages/client/README.md'), 'utf8');
  const m = /```js\n(\/\/ fetch-svid\.mjs[^\n]*\n[\s\S]*?)```/.exec(readme);
  if (!m) throw new Error('packages/client/README.md: no ```js block starting with "// fetch-svid.mjs"');
  return m[1]!;
}

/** The first DER certificate of a concatenation (a chain as the Workload API sends it). */
function firstCert(der: Buffer): X509Certificate {
  // SEQUENCE with a long-form length: 0x30 0x82 hi lo (certificates are 256 B – 64 KiB).
  if (der[0] !== 0x30 || der[1] !== 0x82) throw new Error('not a DER certificate');
  return new X509Certificate(der.subarray(0, 4 + der.readUInt16BE(2)));
}

const noSoftHsm = lacks(!softHsmAvailable(), 'SoftHSM2 (the installed server runs on a token)');

describe.skipIf(noSoftHsm)('the packages from their tarballs', () => {
  const tmp = tempDir('anchorage-packaging-');
  const clientProject = join(tmp.dir, 'client-project');
  const prefix = join(tmp.dir, 'prefix');
  const installedBin = join(prefix, 'bin', 'anchorage');
  const installedPkg = join(prefix, 'lib', 'node_modules', 'anchorage');
  let clientTarball = '';
  let td: RealTrustDomain | undefined;

  beforeAll(() => {
    for (const d of ['client-pack', 'pack', 'client-project', 'prefix']) mkdirSync(join(tmp.dir, d));
    clientTarball = pack(join(tmp.dir, 'client-pack'), '@anchorage/client');
    installIntoProject(clientProject, clientTarball, ['--prefer-offline']);
    const tarball = pack(join(tmp.dir, 'pack'));
    // npm runs no dependency's install script unless allowed: these three compile native addons.
    npm(['install', '-g', '--prefix', prefix, '--allow-scripts=anchorage,better-sqlite3,pkcs11js', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=warn', tarball], tmp.dir);
  }, 1_200_000);

  afterAll(async () => {
    await td?.close();
    tmp.cleanup();
  });

  describe('@anchorage/client', () => {
    it('packs compiled ESM, declarations, the Workload API proto and its README, nothing else', () => {
      const listing = spawnSync('tar', ['-tzf', clientTarball], { encoding: 'utf8' }).stdout.trim().split('\n').sort();
      expect(listing.filter((f) => !/^package\/dist\/.+\.(js|d\.ts)$/.test(f))).toEqual([
        'package/README.md',
        'package/package.json',
        'package/proto/spiffe/workload.proto',
      ]);
      for (const f of ['index.js', 'index.d.ts', 'spiffe/index.js', 'proto/load.js']) expect(listing).toContain(`package/dist/${f}`);
      expect(listing.filter((f) => f.includes('.test.'))).toEqual([]);
    });

    it('installs without a native addon anywhere in the tree, and without anchorage', () => {
      expect(nativeAddonsIn(join(clientProject, 'node_modules'))).toEqual([]);
      const names = installedPackages(clientProject).map((p) => p.slice(0, p.lastIndexOf('@')));
      expect(names).toContain('@anchorage/client');
      for (const heavy of ['anchorage', 'pkcs11js', 'better-sqlite3', 'koffi', 'pino', '@peculiar/x509']) expect(names).not.toContain(heavy);
    });

    it('the native-addon check finds the addons of the installed anchorage (so it can fail)', () => {
      const found = nativeAddonsIn(installedPkg);
      expect(found).toEqual(
        expect.arrayContaining(['native/ecverify/binding.gyp', 'native/ecverify/build/Release/ecverify.node', 'native/p11sign/binding.gyp', 'native/p11sign/build/Release/p11sign.node']),
      );
      expect(found.some((f) => f.startsWith('node_modules/better-sqlite3/') && f.endsWith('.node'))).toBe(true);
      expect(found.some((f) => f.startsWith('node_modules/pkcs11js/') && f.endsWith('.node'))).toBe(true);
    });

    it('types its exports for TypeScript (a wrong use is a type error)', () => {
      writeFileSync(
        join(clientProject, 'tsconfig.json'),
        // A Node project's usual settings, and no skipLibCheck: the declarations are checked against
        // the @types/node a fresh install brings.
        JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, types: ['node'] } }),
      );
      writeFileSync(
        join(clientProject, 'good.ts'),
        [
          "import { X509Source, SpiffeId, type X509Svid } from '@anchorage/client';",
          "import { TrustDomain } from '@anchorage/client/spiffe/id';",
          'export const id: string = SpiffeId.parse(`spiffe://a.test/b`).trustDomain.name;',
          "export const td: TrustDomain = TrustDomain.parse('a.test');",
          'export async function leaf(): Promise<string> { const s = await X509Source.create(); const v: X509Svid = s.svid(); return v.spiffeId.path; }',
          '',
        ].join('\n'),
      );
      const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
      const good = spawnSync(process.execPath, [tsc, '-p', clientProject], { cwd: clientProject, encoding: 'utf8' });
      expect(good.stdout + good.stderr).toBe('');
      expect(good.status).toBe(0);
      writeFileSync(join(clientProject, 'bad.ts'), "import { SpiffeId } from '@anchorage/client';\nexport const n: number = SpiffeId.parse('spiffe://a.test/b');\n");
      const bad = spawnSync(process.execPath, [tsc, '-p', clientProject], { cwd: clientProject, encoding: 'utf8' });
      expect(bad.status).not.toBe(0);
      expect(bad.stdout).toContain("bad.ts(2,14): error TS2322: Type 'SpiffeId' is not assignable to type 'number'.");
    });

    it('loads from CommonJS too (require of the ES module)', () => {
      const r = spawnSync(process.execPath, ['-e', "const c = require('@anchorage/client'); console.log(typeof c.X509Source, c.SpiffeId.parse('spiffe://a.test/b').path)"], {
        cwd: clientProject,
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('function /b\n');
    });

    it("fetches its X509-SVID from a real agent (the installed anchorage's) with the README's example", async () => {
      const dir = join(tmp.dir, 'td');
      mkdirSync(dir, { mode: 0o755 });
      td = await startTrustDomain(dir, { trustDomain: TD, entries: [{ spiffeId: WORKLOAD_ID, selectors: [`unix:uid:${process.getuid!()}`] }], bin: installedBin });
      const served = await waitForSvid(td.workloadSocket, WORKLOAD_ID, 30_000);
      const leaf = firstCert(Buffer.from(served.svids[0]!.x509_svid));

      writeFileSync(join(clientProject, 'fetch-svid.mjs'), readmeExample());
      const child = spawn(process.execPath, ['fetch-svid.mjs'], {
        cwd: clientProject,
        env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: td.endpoint },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      /** The complete lines printed so far, once `done` says they are enough. */
      const lines = async (done: (ls: string[]) => boolean): Promise<string[]> => {
        const deadline = Date.now() + CLIENT_CHILD_TIMEOUT_MS;
        for (;;) {
          const ls = out.split('\n').slice(0, -1);
          if (done(ls)) return ls;
          if (child.exitCode !== null || Date.now() > deadline) throw new Error(`fetch-svid.mjs printed:\n${out}${err}${td!.diagnostics()}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      try {
        expect((await lines((ls) => ls.length >= 2)).slice(0, 2)).toEqual([WORKLOAD_ID, leaf.validTo]);
        // A rotation reaches the example on its open stream: an update with a new serial (the
        // agent may first resend the old SVID under the entry's new hint).
        await td.rotate();
        const updates = (await lines((ls) => ls.slice(2).some((l) => l !== `updated: ${leaf.serialNumber}`))).slice(2);
        for (const u of updates) expect(u).toMatch(/^updated: [0-9A-F]+$/);
        expect(updates.at(-1)).not.toBe(`updated: ${leaf.serialNumber}`);
        child.kill('SIGINT');
        // close() leaves nothing to keep the process alive.
        expect(await exited).toBe(0);
        expect(err).toBe('');
      } finally {
        child.kill('SIGKILL');
      }
    });
  });

  describe('anchorage', () => {
    it('the installed `anchorage --help` prints the usage', () => {
      const r = spawnSync(installedBin, ['--help'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe('usage: anchorage <command> [flags]');
      // Exactly what the repository's own build prints: every command is there.
      expect(r.stdout).toBe(spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' }).stdout);
      expect(r.stdout).toContain('\n  server run -c server.yaml ');
    });

    it('bundles @anchorage/client, the same version as the workspace', () => {
      const bundled = JSON.parse(readFileSync(join(installedPkg, 'node_modules/@anchorage/client/package.json'), 'utf8')) as { version: string };
      const workspace = JSON.parse(readFileSync(join(REPO, 'packages/client/package.json'), 'utf8')) as { version: string };
      expect(bundled.version).toBe(workspace.version);
      expect(existsSync(join(installedPkg, 'dist/cli/main.js'))).toBe(true);
      expect(existsSync(join(installedPkg, 'dist/bench'))).toBe(false);
      expect(existsSync(join(installedPkg, 'dist/test'))).toBe(false);
    });
  });

  describe.skipIf(lacks(!existsSync('/usr/bin/systemd-analyze'), 'systemd-analyze (/usr/bin)'))('the systemd units it ships', () => {
    const UNITS = ['anchorage-server.service', 'anchorage-agent.service'];
    const SHIPPED_BIN = '/usr/local/bin/anchorage';

    /** `systemd-analyze verify` of copies of the installed units whose ExecStart names `bin`: its exit code and complaints. */
    function verify(bin: string, edit: (unit: string) => string = (u) => u): { code: number | null; complaints: string } {
      const dir = join(tmp.dir, `units-${Math.random().toString(36).slice(2)}`);
      mkdirSync(dir);
      const paths = UNITS.map((u) => {
        const text = readFileSync(join(installedPkg, 'deploy/systemd', u), 'utf8');
        // The units name the command where `npm install -g` puts it with the default prefix.
        expect(text.split(SHIPPED_BIN).length - 1, u).toBe(1);
        writeFileSync(join(dir, u), edit(text.replace(SHIPPED_BIN, bin)));
        return join(dir, u);
      });
      // No systemd runs as PID 1 here: verify loads the units offline. It checks
      // every directive and that ExecStart is an executable file.
      const r = spawnSync('/usr/bin/systemd-analyze', ['verify', ...paths], { encoding: 'utf8' });
      return { code: r.status, complaints: (r.stdout + r.stderr).trim() };
    }

    it('pass `systemd-analyze verify` with the installed anchorage, without a complaint', () => {
      expect(verify(installedBin)).toEqual({ code: 0, complaints: '' });
    });

    it('fail it when the command is missing or a directive is misspelled (so the check can fail)', () => {
      const missing = verify(join(tmp.dir, 'no-such-anchorage'));
      expect(missing.code).not.toBe(0);
      expect(missing.complaints).toContain(`anchorage-server.service: Command ${join(tmp.dir, 'no-such-anchorage')} is not executable: No such file or directory`);
      const typo = verify(installedBin, (u) => u.replace('ProtectSystem=strict', 'ProtectSystm=strict'));
      expect(typo.complaints).toMatch(/anchorage-server\.service:\d+: Unknown key 'ProtectSystm' in section \[Service\], ignoring\./);
    });

    it('sandbox as promised: dedicated user, strict read-only system, private /tmp, no new privileges', () => {
      for (const u of UNITS) {
        const text = readFileSync(join(installedPkg, 'deploy/systemd', u), 'utf8');
        for (const line of ['ProtectSystem=strict', 'PrivateTmp=yes', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=']) expect(text.split('\n'), `${u}: ${line}`).toContain(line);
        expect(text).toMatch(/^User=anchorage(-agent)?$/m);
      }
    });

    it('use the default paths: the example configs parse, the sockets and data dirs are where the units give write access', () => {
      const etc = join(installedPkg, 'deploy/systemd');
      const unit = (u: string) => readFileSync(join(etc, u), 'utf8');
      const server = parseServerConfig(parseYaml(readFileSync(join(etc, 'server.yaml'), 'utf8')), 'server.yaml', '/etc/anchorage');
      expect(server.data_dir).toBe('/var/lib/anchorage/server');
      expect(server.admin_socket).toBe('/run/anchorage-server/private/admin.sock'); // the default, in the unit's RuntimeDirectory
      expect(unit('anchorage-server.service')).toContain('\nStateDirectory=anchorage/server\n');
      expect(unit('anchorage-server.service')).toContain('\nReadWritePaths=/var/lib/anchorage/server /run/anchorage-server\n');
      expect(unit('anchorage-server.service')).toContain('\nRuntimeDirectory=anchorage-server\n');
      expect(unit('anchorage-server.service')).toContain('\nEnvironmentFile=/etc/anchorage/server.env\n');
      expect(server.key_manager).toMatchObject({ type: 'pkcs11', pin_env: 'ANCHORAGE_PIN' });
      expect(readFileSync(join(etc, 'server.env'), 'utf8')).toMatch(/^ANCHORAGE_PIN=/m);

      const agent = parseAgentConfig(parseYaml(readFileSync(join(etc, 'agent.yaml'), 'utf8')), 'agent.yaml', '/etc/anchorage');
      expect(agent.socket_path).toBe(DEFAULT_SOCKET_PATH);
      expect(DEFAULT_SOCKET_PATH).toBe('/run/anchorage-agent/public/api.sock');
      expect(agent.data_dir).toBe('/var/lib/anchorage/agent');
      expect(unit('anchorage-agent.service')).toContain('\nRuntimeDirectory=anchorage-agent\n');
      expect(unit('anchorage-agent.service')).toContain('\nReadWritePaths=/var/lib/anchorage/agent /run/anchorage-agent\n');
    });

    it('come with the users they run as (sysusers.d)', () => {
      const users = readFileSync(join(installedPkg, 'deploy/systemd/anchorage.sysusers.conf'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('u '))
        .map((l) => l.split(/\s+/)[1]);
      expect(users).toEqual(['anchorage', 'anchorage-agent']);
      expect(readdirSync(join(installedPkg, 'deploy/systemd')).sort()).toEqual([...UNITS, 'agent.yaml', 'anchorage.sysusers.conf', 'server.env', 'server.yaml'].sort());
    });
  });
});
