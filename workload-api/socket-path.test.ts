import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { prepareSocketPath } from './socket-path.js';

describe('prepareSocketPath', () => {
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-socket-path-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses, naming socket_path, a socket directory it cannot create', async () => {
    // A file where a directory should be: what a user gets for any directory
    // they may not create (the default under /run, run by hand).
    writeFileSync(join(dir, 'file'), '');
    const sub = join(dir, 'file', 'public');
    const err = await prepareSocketPath(join(sub, 'api.sock')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AnchorageError);
    expect((err as AnchorageError).code).toBe('failed_precondition');
    expect((err as AnchorageError).message).toBe(
      `workloadapi: cannot create the socket directory ${sub}: ENOTDIR: not a directory, mkdir '${sub}'; choose another socket_path`,
    );
  });
});
