// The alerting rules in deploy/prometheus: `promtool check rules` accepts
// them, `promtool test rules` passes the unit tests, every alert is tested
// both firing and not firing, and every metric a rule names is one the server
// or the agent exports.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { lacks } from '../helpers/needs.js';
import { REPO, tempDir } from '../helpers/process.js';

const PROMTOOL = '/usr/bin/promtool';
const DIR = join(REPO, 'deploy', 'prometheus');

function promtool(args: string[]): { code: number; out: string } {
  const r = spawnSync(PROMTOOL, args, { cwd: DIR, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

interface RuleFile {
  groups: Array<{ rules: Array<{ alert?: string; expr: string }> }>;
}
interface TestFile {
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
}

const rules = parse(readFileSync(join(DIR, 'alerts.yml'), 'utf8')) as RuleFile;
const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert)).filter((a): a is string => a !== undefined);

describe.skipIf(lacks(!existsSync(PROMTOOL), 'promtool (Debian package prometheus)'))('alerting rules (promtool)', () => {
  it('pass `promtool check rules`', () => {
    const r = promtool(['check', 'rules', 'alerts.yml']);
    expect(r.out).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(r.code, r.out).toBe(0);
  });

  it('pass their unit tests, `promtool test rules alerts.test.yml`', () => {
    const r = promtool(['test', 'rules', 'alerts.test.yml']);
    expect(r.out).toContain('SUCCESS');
    expect(r.code, r.out).toBe(0);
  });

  it('a rule that is wrong fails the unit tests (the tests can fail)', () => {
    // The same tests against rules whose drift alert compares the wrong way.
    const broken = readFileSync(join(DIR, 'alerts.yml'), 'utf8').replace('anchorage_agent_bundle_sequence\n            < on', 'anchorage_agent_bundle_sequence\n            > on');
    const { dir, cleanup } = tempDir('anchorage-rules-');
    try {
      writeFileSync(join(dir, 'alerts.yml'), broken);
      copyFileSync(join(DIR, 'alerts.test.yml'), join(dir, 'alerts.test.yml'));
      const r = spawnSync(PROMTOOL, ['test', 'rules', 'alerts.test.yml'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(1);
      expect(`${r.stdout}${r.stderr}`).toContain('alertname: AnchorageAgentBundleDrift');
    } finally {
      cleanup();
    }
  });
});

describe('alerting rules (coverage)', () => {
  const tests = (parse(readFileSync(join(DIR, 'alerts.test.yml'), 'utf8')) as TestFile).tests.flatMap((t) => t.alert_rule_test ?? []);

  it.each(alerts)('%s is tested firing and not firing', (alert) => {
    const cases = tests.filter((t) => t.alertname === alert);
    expect(cases.some((c) => (c.exp_alerts ?? []).length > 0), 'a case where it fires').toBe(true);
    expect(cases.some((c) => (c.exp_alerts ?? []).length === 0), 'a case where it does not').toBe(true);
  });

  it('names only metrics the server or the agent exports', () => {
    const exported = new Set<string>();
    for (const file of ['ca/metrics.ts', 'node-agent/metrics.ts']) {
      for (const m of readFileSync(join(REPO, file), 'utf8').matchAll(/name: '(anchorage_[a-z_]+)'/g)) exported.add(m[1]!);
    }
    const used = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => [...r.expr.matchAll(/anchorage_[a-z_]+/g)].map((m) => m[0]))));
    expect([...used].filter((m) => !exported.has(m))).toEqual([]);
    expect(used.size).toBeGreaterThan(8);
  });
});
