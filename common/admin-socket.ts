/**
 * Where the admin API listens unless server.yaml says otherwise
 * (`admin_socket`), and where the CLI looks for it unless told: one constant
 * for both, so that `anchorage entry list` needs no flag against a server run
 * with the defaults. In a directory of its own (the server makes it 0700 and
 * refuses one another uid owns), like SPIRE's /tmp/spire-server/private, but
 * under /run: only root can make directories there, so no other local user can
 * claim the path before the server starts, and the systemd unit's
 * RuntimeDirectory (deploy/systemd) is exactly this place, outside the
 * service's PrivateTmp, where the CLI can reach it. Beside the agent's
 * /run/anchorage-agent/public/api.sock.
 */
export const DEFAULT_ADMIN_SOCKET = '/run/anchorage-server/private/admin.sock';

/** Names the admin socket for the CLI, between the flags and the default. */
export const ADMIN_SOCKET_ENV = 'ANCHORAGE_ADMIN_SOCKET';
