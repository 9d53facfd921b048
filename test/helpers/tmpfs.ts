import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, rmdirSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Mounting needs root; CI runs as root. Tests skip (with this reason) otherwise. */
export const canMount = typeof process.getuid === 'function' && process.getuid() === 0;

/** A real, small tmpfs that a test can fill up and drain. */
export interface SmallFs {
  /** The mount point. */
  readonly dir: string;
  /**
   * Writes a filler file until the filesystem refuses with ENOSPC (bounded by
   * the mount's size). Returns the number of bytes the filler took.
   */
  fill(): number;
  /** Removes the filler: the space is back. */
  drain(): void;
  /** Unmounts and removes the mount point (idempotent). */
  unmount(): void;
}

/** Mounts a tmpfs of `sizeBytes` on a fresh directory under the system temp dir. */
export function mountSmallFs(sizeBytes: number): SmallFs {
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-smallfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmdirSync(dir);
    throw new Error(`mount tmpfs on ${dir} failed: ${r.stderr || r.error?.message}`);
  }
  const filler = join(dir, 'filler');
  let mounted = true;
  return {
    dir,
    fill() {
      const fd = openSync(filler, 'a');
      const chunk = Buffer.alloc(16 * 1024, 0x5a);
      let written = 0;
      try {
        // tmpfs allocates whole pages: after a short write the next one fails.
        for (let i = 0; i < sizeBytes / 4096 + 16; i++) {
          try {
            written += writeSync(fd, chunk);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return written;
            throw err;
          }
        }
      } finally {
        closeSync(fd);
      }
      throw new Error(`filling ${dir} never hit ENOSPC after ${written} bytes`);
    },
    drain() {
      rmSync(filler, { force: true });
    },
    unmount() {
      if (!mounted) return;
      mounted = false;
      // Lazy, so that a process that still holds a file open cannot make a
      // failed test leak the mount.
      spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
