// The Workload API's Unix socket on disk: checks that nobody else can swap
// it (the directories above it), clears a stale socket, refuses to replace
// anything else or a live server's socket, and binds with the final
// permissions from the start.
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, type Server as NetServer } from 'node:net';
import { dirname } from 'node:path';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';

/**
 * The socket's directory and every directory above it must be ours (or
 * root's) and writable by nobody else, unless sticky like /tmp: whoever can
 * rename an entry on the way can swap the socket for their own and hand
 * workloads identities and bundles of their choosing.
 */
function checkSocketDir(dir: string): void {
  const uid = process.geteuid?.() ?? 0;
  for (let d = dir; ; d = dirname(d)) {
    const st = lstatSync(d);
    if (!st.isDirectory()) throw new AnchorageError('failed_precondition', `workloadapi: ${d} is not a directory`);
    if (st.uid !== uid && st.uid !== 0) {
      throw new AnchorageError('failed_precondition', `workloadapi: ${d} belongs to uid ${st.uid}, not to this process (uid ${uid}) or root; choose another socket_path`);
    }
    const sticky = (st.mode & 0o1000) !== 0;
    if ((st.mode & 0o022) !== 0 && !(sticky && d !== dir)) {
      throw new AnchorageError(
        'failed_precondition',
        `workloadapi: ${d} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)}); make it 0755 or choose another socket_path`,
      );
    }
    if (d === dirname(d)) return;
  }
}

/**
 * Makes sure `path` can be bound: its directory exists, and whatever is at
 * the path is a stale socket (removed) or nothing. A regular file there is
 * refused, not deleted — it is more likely a misconfiguration than ours.
 * A socket someone still listens on is refused too: two agents on one socket
 * would hand out identities from two caches.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    // Typically the default under /run, which the system service's
    // RuntimeDirectory provides, run by hand as an ordinary user.
    throw new AnchorageError('failed_precondition', `workloadapi: cannot create the socket directory ${dir}: ${errorMessage(err)}; choose another socket_path`, { cause: err });
  }
  checkSocketDir(dir);
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new AnchorageError('unavailable', `workloadapi: cannot inspect ${path}: ${errorMessage(err)}`, { cause: err });
  }
  if (!st.isSocket()) {
    throw new AnchorageError('failed_precondition', `workloadapi: ${path} exists and is not a socket; refusing to replace it`);
  }
  const live = await new Promise<boolean>((resolve, reject) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(false);
      else reject(new AnchorageError('unavailable', `workloadapi: cannot probe ${path}: ${err.message}`, { cause: err }));
    });
  });
  if (live) throw new AnchorageError('failed_precondition', `workloadapi: another server is listening on ${path}`);
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Binds the listening socket with its final permissions from the start. The
 * umask is narrowed around the (synchronous) bind so that no connection can
 * slip in under wider permissions before chmod; where the umask cannot be
 * changed (worker threads) chmod alone has to do.
 */
const LISTEN_BACKLOG = 4096;

export async function listen(server: NetServer, path: string, mode: number): Promise<void> {
  let previous: number | undefined;
  try {
    previous = process.umask(~mode & 0o777);
  } catch {
    previous = undefined;
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // A deep accept queue: after an agent restart every workload on the node
      // reconnects at once, and a full queue fails connect() with EAGAIN.
      // The kernel caps it at net.core.somaxconn.
      server.listen({ path, backlog: LISTEN_BACKLOG }, () => {
        server.off('error', reject);
        resolve();
      });
      if (previous !== undefined) {
        process.umask(previous);
        previous = undefined;
      }
    });
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
  chmodSync(path, mode);
}
