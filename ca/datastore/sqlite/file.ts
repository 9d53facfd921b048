// The database file on disk: created with owner-only modes before SQLite opens
// it, because the CA journal names HSM keys and the entries describe every
// workload. Separate from the queries: this is about the file, not the data.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';

/** Creates the directory (0700) and an empty file (0600) before SQLite sees them. */
export function prepareFile(file: string): void {
  const dir = dirname(file);
  try {
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700); // mkdir's mode is filtered by the umask
    }
    if (!existsSync(file)) {
      // SQLite would create the file with 0644 under a usual umask; create it
      // ourselves so it is never readable by others, even briefly. A zero-length
      // file is a valid empty database.
      closeSync(openSync(file, 'wx', 0o600));
    }
  } catch (err) {
    throw new AnchorageError('unavailable', `datastore: cannot create ${file}: ${errorMessage(err)}`, { cause: err });
  }
  if (!statSync(file).isFile()) {
    throw new AnchorageError('unavailable', `datastore: ${file} is not a regular file`);
  }
  try {
    restrictMode(file);
  } catch (err) {
    throw new AnchorageError('unavailable', `datastore: cannot restrict ${file} to mode 0600: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * SQLite creates -wal and -shm with the mode of the main file, so they follow
 * once the main file is 0600; this only repairs files left by an older setup.
 */
export function restrictSidecars(file: string): void {
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(file + suffix)) restrictMode(file + suffix);
  }
}

function restrictMode(file: string): void {
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
}
