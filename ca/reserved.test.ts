import { describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { AGENT_PATH_PREFIX } from './agentapi/service.js';
import { checkNotReserved, isReservedPath } from './reserved.js';

describe('the reserved namespace', () => {
  it.each([
    ['/anchorage', true],
    ['/anchorage/server', true],
    ['/anchorage/agent/join_token/0123', true],
    ['/anchorage/anything/else', true],
    ['', false],
    ['/anchorages', false],
    ['/anchorage-ops/web', false],
    ['/Anchorage/server', false],
    ['/ns/anchorage/server', false],
  ])('%j reserved: %s', (path, reserved) => {
    expect(isReservedPath(path)).toBe(reserved);
  });

  it('holds every ID the server and the agents use', () => {
    const td = TrustDomain.parse('example.org');
    expect(isReservedPath('/anchorage/server')).toBe(true);
    expect(isReservedPath(`${AGENT_PATH_PREFIX}join_token/abc`)).toBe(true);
    const err = (() => {
      try {
        checkNotReserved(SpiffeId.fromPath(td, '/anchorage/server'), 'x509svid');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(AnchorageError);
    expect(err).toMatchObject({ code: 'invalid_argument', message: 'x509svid: spiffe id spiffe://example.org/anchorage/server is in the namespace reserved for anchorage itself (/anchorage/...)' });
    expect(checkNotReserved(SpiffeId.fromPath(td, '/web'), 'x509svid').toString()).toBe('spiffe://example.org/web');
  });
});
