/**
 * Where the admin API listens unless server.yaml says otherwise
 * (`admin_socket`), and where the CLI looks for it unless told: one constant
 * for both, so that `anchorage entry list` needs no flag against a server run
 * with the defaults. In a directory of its own (the server makes it 0700 and
 * refuses one another uid owns), after SPIRE's /tmp/spire-server/private.
 */
export const DEFAULT_ADMIN_SOCKET = '/tmp/anchorage-server/private/admin.sock';

/** Names the admin socket for the CLI, between the flags and the default. */
export const ADMIN_SOCKET_ENV = 'ANCHORAGE_ADMIN_SOCKET';
