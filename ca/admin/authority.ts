// Admin handlers for the authority lifecycle (anchorage authority ...).
import { AnchorageError } from '@anchorage/client/errors';
import { unaryHandler } from '../../common/grpc.js';
import type { Logger } from '../../common/log.js';
import type { AdminHandlers } from '../../proto/gen/anchorage/admin/v1/Admin.js';

type AuthorityHandlers = Pick<AdminHandlers, 'ListAuthorities' | 'PrepareAuthority' | 'ActivateAuthority' | 'TaintAuthority' | 'RevokeAuthority'>;

export function authorityHandlers(deps: { logger: Logger }): AuthorityHandlers {
  const log = deps.logger;
  const notYet = (): never => {
    throw new AnchorageError('unavailable', 'admin: the authority lifecycle is being built');
  };
  return {
    ListAuthorities: unaryHandler(log, 'ListAuthorities', async () => notYet()),
    PrepareAuthority: unaryHandler(log, 'PrepareAuthority', async () => notYet()),
    ActivateAuthority: unaryHandler(log, 'ActivateAuthority', async () => notYet()),
    TaintAuthority: unaryHandler(log, 'TaintAuthority', async () => notYet()),
    RevokeAuthority: unaryHandler(log, 'RevokeAuthority', async () => notYet()),
  };
}
