import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AnchorageError } from '@anchorage/client/errors';

/**
 * Takes `<dir>/<who>.lock`, holding our pid, so two processes never share a
 * data dir. A lock left by a dead process (SIGKILL, power loss) is taken
 * over. Returns the function that releases it (only if it is still ours).
 */
export function lockDataDir(dir: string, who: string): () => void {
  const path = join(dir, `${who}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return () => {
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new AnchorageError('failed_precondition', `${who}: another ${who} (pid ${pid}) is using ${dir}`);
      }
      unlinkSync(path);
    }
  }
  throw new AnchorageError('failed_precondition', `${who}: cannot take the lock ${path}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
