import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml, Parser, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { errorMessage, invalid } from '@anchorage/client/errors';

/** A config file larger than this is refused before it is parsed. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** Collections nested deeper than this are refused before the YAML composer (which recurses) sees them. */
export const MAX_CONFIG_DEPTH = 64;
/** YAML aliases per file: more is refused (an alias "bomb" expands exponentially). */
const MAX_ALIASES = 50;

const CONTAINERS = new Set(['block-map', 'block-seq', 'flow-collection']);

/**
 * The deepest nesting of collections in a YAML text, measured on yaml's
 * concrete syntax tree. Its Parser keeps an explicit stack and this walk does
 * too, so a pathological file costs time linear in its size instead of the
 * stack overflow the composer hits (which, the second time in a process, V8
 * can turn into a fatal out-of-memory inside a RegExp compilation).
 */
export function yamlDepth(text: string): number {
  let max = 0;
  for (const token of new Parser().parse(text)) {
    const stack: Array<[unknown, number]> = [[token, 0]];
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      if (node === null || typeof node !== 'object') continue;
      if (Array.isArray(node)) {
        for (const child of node) stack.push([child, depth]);
        continue;
      }
      const n = node as Record<string, unknown>;
      const d = depth + (CONTAINERS.has(n.type as string) ? 1 : 0);
      if (d > max) max = d;
      for (const key of ['value', 'key', 'items', 'sep', 'start', 'end']) {
        if (n[key] !== null && typeof n[key] === 'object') stack.push([n[key], d]);
      }
    }
  }
  return max;
}

/**
 * Reads a YAML config file into a plain document: bounded in size, nesting
 * and aliases, duplicate keys refused, the top level a mapping (or empty).
 * Every failure is one line naming the file, and the line where YAML knows it.
 */
export function readYamlConfig(path: string): Record<string, unknown> | null {
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > MAX_CONFIG_BYTES) throw invalid(`config: ${path}: ${size} bytes is more than a config file may have (${MAX_CONFIG_BYTES})`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'invalid_argument') throw err;
    throw invalid(`config: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, err);
  }
  if (text.length > MAX_CONFIG_BYTES) throw invalid(`config: ${path}: more than ${MAX_CONFIG_BYTES} bytes`);
  const depth = yamlDepth(text);
  if (depth > MAX_CONFIG_DEPTH) {
    throw invalid(`config: ${path}: not valid YAML: nested ${depth} levels deep (at most ${MAX_CONFIG_DEPTH})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true, maxAliasCount: MAX_ALIASES });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` line ${err.linePos[0].line}:` : '';
    const what = errorMessage(err).split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw invalid(`config: ${path}:${where} not valid YAML: ${JSON.stringify(what).slice(1, -1)}`, err);
  }
  if (doc !== null && (typeof doc !== 'object' || Array.isArray(doc))) {
    throw invalid(`config: ${path}: the top level must be a mapping of keys`);
  }
  return doc as Record<string, unknown> | null;
}

/** A key as printed in a message: plain when it is a plain identifier, JSON-quoted otherwise (so no newline or escape reaches a terminal). */
export function printableKey(key: PropertyKey): string {
  const k = String(key);
  return /^[A-Za-z0-9_.-]{1,64}$/.test(k) ? k : JSON.stringify(k.length > 64 ? `${k.slice(0, 64)}…` : k);
}

/** Turns zod issues into one line per problem, each naming the key path. */
export function formatIssues(source: string, error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length ? issue.path.map(printableKey).join('.') : '(top level)';
      let message = issue.message;
      if (issue.code === 'unrecognized_keys') message = `unknown key(s): ${issue.keys.map(printableKey).join(', ')}`;
      return `${source}: ${path}: ${message.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => JSON.stringify(c).slice(1, -1))}`;
    })
    .join('\n');
}
