import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, unlinkSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/process.js';

// scripts/check-proto.sh is the CI gate that keeps proto/gen in step with the
// .proto files; these runs show it passes today and fails on each kind of drift.
const dir = mkdtempSync(join(tmpdir(), 'anchorage-check-proto-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function check(...genDirs: string[]): { code: number | null; stderr: string } {
  const r = spawnSync('bash', [join(REPO, 'scripts', 'check-proto.sh'), ...genDirs], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stderr: r.stderr };
}

describe('scripts/check-proto.sh', () => {
  it('passes on the committed proto/gen', () => {
    const r = check();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('fails, naming the file, when a generated file was edited or is missing', () => {
    const edited = join(dir, 'edited');
    cpSync(join(REPO, 'proto', 'gen'), edited, { recursive: true });
    appendFileSync(join(edited, 'admin.ts'), '// edited by hand\n');
    const r1 = check(edited);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain(`check-proto: ${edited} is out of date with the .proto files; run scripts/gen-proto.sh and commit the result:`);
    expect(r1.stderr).toContain('admin.ts');

    // The client package's generated Workload API types are checked too.
    const missing = join(dir, 'missing');
    cpSync(join(REPO, 'packages', 'client', 'src', 'proto', 'gen'), missing, { recursive: true });
    unlinkSync(join(missing, 'X509SVID.ts'));
    const r2 = check(join(REPO, 'proto', 'gen'), missing);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/Only in \(generated\): X509SVID\.ts/);
  });
});
