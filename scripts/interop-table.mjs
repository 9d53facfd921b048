// Writes the README's interop tables from the outcomes the interop suites
// recorded in .test-results/interop/*.json (test/interop/harness.ts,
// interopRecorder): client library × RPC, and certificate kind × linter.
// Only outcomes go in (no dates), so the README changes when they do.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const RESULTS = '.test-results/interop';
const README = 'README.md';
const BEGIN = '<!-- interop-table:begin -->';
const END = '<!-- interop-table:end -->';
const LIBRARIES = ['go-spiffe v2', 'py-spiffe', 'rust spiffe', 'java-spiffe'];
const LINTERS = ['pkilint', 'zlint'];
const RPCS = [
  'FetchX509SVID',
  'FetchX509Bundles',
  'FetchJWTSVID',
  'FetchJWTBundles',
  'ValidateJWTSVID',
  'Watch (rotation)',
  'mTLS go→node',
  'mTLS node→go',
  'PermissionDenied (no identity)',
  'InvalidArgument (no header)',
];
const MARK = { pass: 'pass', fail: '**FAIL**', skip: 'skipped' };

if (!existsSync(RESULTS)) {
  console.log('interop table: no results yet (run npm run test:interop)');
  process.exit(0);
}
const runs = new Map();
for (const f of readdirSync(RESULTS).filter((n) => n.endsWith('.json'))) {
  try {
    const r = JSON.parse(readFileSync(join(RESULTS, f), 'utf8'));
    runs.set(r.library, r.results);
  } catch (err) {
    console.error(`interop table: ignoring ${f}: ${err.message}`);
  }
}

function table(rowsName, rows, columns) {
  const head = `| ${rowsName} | ${columns.join(' | ')} |\n|${' --- |'.repeat(columns.length + 1)}\n`;
  return head + rows.map((r) => `| ${r} | ${columns.map((c) => MARK[runs.get(r)?.[c]] ?? '—').join(' | ')} |`).join('\n') + '\n';
}

const libs = LIBRARIES.filter((l) => runs.has(l));
const rpcs = RPCS.filter((c) => libs.some((l) => runs.get(l)[c] !== undefined));
const linters = LINTERS.filter((l) => runs.has(l));
const kinds = [...new Set(linters.flatMap((l) => Object.keys(runs.get(l))))];
// Certificate kinds as rows: transpose by treating each kind as a row and each linter as a column.
const lintRows = kinds.map((k) => `| ${k} | ${linters.map((l) => MARK[runs.get(l)[k]] ?? '—').join(' | ')} |`).join('\n');
const text =
  `${BEGIN}\n` +
  (libs.length ? table('client library', libs, rpcs) : '_no client library results yet_\n') +
  '\n' +
  (linters.length ? `| certificate | ${linters.join(' | ')} |\n|${' --- |'.repeat(linters.length + 1)}\n${lintRows}\n` : '_no lint results yet_\n') +
  `${END}`;

const readme = readFileSync(README, 'utf8');
const a = readme.indexOf(BEGIN);
const b = readme.indexOf(END);
if (a < 0 || b < a) {
  console.error(`interop table: ${README} has no ${BEGIN} … ${END} block`);
  process.exit(1);
}
const next = readme.slice(0, a) + text + readme.slice(b + END.length);
if (next !== readme) {
  writeFileSync(README, next);
  console.log('interop table: README.md updated');
}
