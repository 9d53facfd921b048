// Canonical selector-set JSON, shared by the entries and agents tables of
// the SQLite and PostgreSQL datastores: equal sets must serialise to equal
// text so that a UNIQUE constraint can compare them.
import type { Selector } from './DataStore.js';

/**
 * Sorted by type then value (code-unit order, independent of locale) and
 * de-duplicated, so that equal sets serialise to equal text.
 */
function normalizeSelectors(selectors: readonly Selector[]): Selector[] {
  const sorted = selectors
    .map((s) => ({ type: s.type, value: s.value }))
    .sort((a, b) => cmp(a.type, b.type) || cmp(a.value, b.value));
  return sorted.filter((s, i) => i === 0 || s.type !== sorted[i - 1]!.type || s.value !== sorted[i - 1]!.value);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The canonical JSON text of a selector set. */
export function selectorsToJson(selectors: readonly Selector[]): string {
  return JSON.stringify(normalizeSelectors(selectors));
}
