import { readFile, stat } from 'node:fs/promises';

/**
 * Parsers for the few /proc and /etc files the unix attestor reads. Kept apart
 * from the attestor so they can be tested on plain strings.
 */

/**
 * Supplementary group ids from the `Groups:` line of /proc/<pid>/status, in
 * kernel order, duplicates removed. An absent line (not Linux?) is an error
 * rather than "no groups", so a format change cannot silently drop selectors.
 */
export function parseStatusGroups(status: string): number[] {
  const m = /^Groups:[ \t]*(.*)$/m.exec(status);
  if (m === null) throw new Error('no Groups: line in status');
  const out: number[] = [];
  for (const tok of (m[1] ?? '').trim().split(/\s+/)) {
    if (tok === '') continue;
    if (!/^\d+$/.test(tok)) throw new Error(`bad gid ${JSON.stringify(tok)} in Groups: line`);
    const gid = Number(tok);
    if (!out.includes(gid)) out.push(gid);
  }
  return out;
}

export { parseStartTime } from '../../workload-api/peercred.js';

/**
 * id → name from an /etc/passwd- or /etc/group-shaped file. The first entry
 * for an id wins, as with getpwuid()/getgrgid() on the files backend.
 */
export function parseIdNames(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const parts = line.split(':');
    const name = parts[0];
    const id = parts[2];
    if (name === undefined || name === '' || id === undefined || !/^\d+$/.test(id)) continue;
    const n = Number(id);
    if (!out.has(n)) out.set(n, name);
  }
  return out;
}

/**
 * A cached id → name table for /etc/passwd or /etc/group. The file is re-read
 * only when the TTL has passed *and* its identity (inode, size, mtime) changed,
 * so a busy agent stats the file at most once per TTL and parses it only after
 * an edit. Concurrent refreshes share one read.
 */
export class IdNameFile {
  private names: Map<number, string> | undefined;
  private identity = '';
  private checkedAt = -Infinity;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly path: string,
    private readonly ttlMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The name for an id, or undefined if the file has none (or cannot be read). */
  async lookup(id: number): Promise<string | undefined> {
    if (this.names === undefined || this.now() - this.checkedAt >= this.ttlMs) {
      this.refreshing ??= this.refresh().finally(() => {
        this.refreshing = undefined;
      });
      await this.refreshing;
    }
    return this.names?.get(id);
  }

  private async refresh(): Promise<void> {
    try {
      const st = await stat(this.path, { bigint: true });
      const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
      if (identity !== this.identity || this.names === undefined) {
        this.names = parseIdNames(await readFile(this.path, 'utf8'));
        this.identity = identity;
      }
    } catch {
      // No names is safe: name selectors are only omitted, never invented.
      this.names = new Map();
      this.identity = '';
    }
    this.checkedAt = this.now();
  }
}
