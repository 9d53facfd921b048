import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, printableKey, readYamlConfig, yamlDepth } from './config-file.js';

const dir = mkdtempSync(join(tmpdir(), 'anchorage-config-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(text: string): string {
  const p = join(dir, `c${n++}.yaml`);
  writeFileSync(p, text);
  return p;
}

describe('readYamlConfig', () => {
  it('reads a mapping, and an empty file as null', () => {
    expect(readYamlConfig(file('a: 1\nb: [x, {c: d}]\n'))).toEqual({ a: 1, b: ['x', { c: 'd' }] });
    expect(readYamlConfig(file(''))).toBeNull();
  });

  it('refuses a file over the size limit before parsing it', () => {
    const p = file(`a: "${'x'.repeat(MAX_CONFIG_BYTES)}"\n`);
    expect(() => readYamlConfig(p)).toThrow(`config: ${p}: ${MAX_CONFIG_BYTES + 6} bytes is more than a config file may have (${MAX_CONFIG_BYTES})`);
  });

  it('refuses nesting deeper than the limit, flow or block, and accepts it at the limit', () => {
    const flow = (d: number) => `a: ${'['.repeat(d - 1)}${']'.repeat(d - 1)}\n`;
    expect(yamlDepth(flow(MAX_CONFIG_DEPTH))).toBe(MAX_CONFIG_DEPTH);
    expect(readYamlConfig(file(flow(MAX_CONFIG_DEPTH)))).toBeTruthy();
    const deep = file(flow(50_000));
    expect(() => readYamlConfig(deep)).toThrow(`config: ${deep}: not valid YAML: nested 50000 levels deep (at most ${MAX_CONFIG_DEPTH})`);
    const block = Array.from({ length: 100 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n') + ' 1\n';
    const b = file(block);
    expect(() => readYamlConfig(b)).toThrow(`config: ${b}: not valid YAML: nested 100 levels deep (at most ${MAX_CONFIG_DEPTH})`);
  });

  it('names the line of a syntax error, refuses duplicate keys, a non-mapping top level and an unreadable file', () => {
    const bad = file('a: 1\nb: [\n');
    expect(() => readYamlConfig(bad)).toThrow(new RegExp(`^config: ${bad}: line \\d+: not valid YAML: `));
    const dup = file('a: 1\na: 2\n');
    expect(() => readYamlConfig(dup)).toThrow(`config: ${dup}: line 2: not valid YAML: Map keys must be unique`);
    const list = file('- a\n');
    expect(() => readYamlConfig(list)).toThrow(`config: ${list}: the top level must be a mapping of keys`);
    const missing = join(dir, 'missing.yaml');
    expect(() => readYamlConfig(missing)).toThrow(`config: cannot read ${missing}: ENOENT`);
    const loop = join(dir, 'loop.yaml');
    symlinkSync(loop, loop);
    expect(() => readYamlConfig(loop)).toThrow(`config: cannot read ${loop}: ELOOP`);
  });
});

describe('printableKey', () => {
  it('prints plain keys as they are and quotes anything that could reach a terminal', () => {
    expect(printableKey('key_manager.pin_env')).toBe('key_manager.pin_env');
    expect(printableKey(3)).toBe('3');
    expect(printableKey('a\nb')).toBe('"a\\nb"');
    expect(printableKey('\u001b[2J')).toBe('"\\u001b[2J"');
    expect(printableKey('x'.repeat(100))).toBe(JSON.stringify(`${'x'.repeat(64)}…`));
  });
});
