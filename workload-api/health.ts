/**
 * `grpc.health.v1.Health` on the Workload API socket, for
 * `spire-agent healthcheck -socketPath` and the probes built on it.
 *
 * What SPIRE's command does (cmd/spire-agent/cli/healthcheck): it dials the
 * socket with no metadata at all and calls Check with service "", and says
 * "Agent is healthy." only on SERVING. So Check does not require the
 * `workload.spiffe.io` header (that header guards the SpiffeWorkloadAPI
 * service against SSRF-style proxying of identities; Check gives none out)
 * and needs no attestation: any local process may ask whether the agent can
 * serve, as it could by calling FetchX509SVID.
 *
 * SERVING means what SPIRE's agent means by it (a FetchX509SVID would be
 * answered OK or PERMISSION_DENIED, not UNAVAILABLE): here, the agent holds
 * an unexpired SVID of its own and a current bundle. Service "" and
 * "SpiffeWorkloadAPI" are known; any other name is NOT_FOUND, as the health
 * protocol asks. Watch is not served (UNIMPLEMENTED, which the protocol
 * allows), so a caller cannot hold streams open here.
 */
import * as grpc from '@grpc/grpc-js';
import { loadHealthProto } from '../proto/load.js';
import type { HealthHandlers } from '../proto/gen/grpc/health/v1/Health.js';

/** Service names Check answers for: the whole server, and the Workload API itself. */
export const HEALTH_SERVICES: readonly string[] = ['', 'SpiffeWorkloadAPI'];

/** Adds the Health service to `server`; `healthy()` decides SERVING or NOT_SERVING on each Check. */
export function addHealthService(server: grpc.Server, healthy: () => boolean): void {
  const handlers: Pick<HealthHandlers, 'Check'> = {
    Check: (call, callback) => {
      if (!HEALTH_SERVICES.includes(call.request.service)) {
        callback({ code: grpc.status.NOT_FOUND, details: `health: unknown service "${call.request.service.slice(0, 64)}"` });
        return;
      }
      let serving = false;
      try {
        serving = healthy();
      } catch {
        // Cannot tell is not serving.
      }
      callback(null, { status: serving ? 'SERVING' : 'NOT_SERVING' });
    },
  };
  server.addService(loadHealthProto().grpc.health.v1.Health.service, handlers as HealthHandlers);
}
