// Original file: proto/grpc/health/v1/health.proto


export interface HealthCheckRequest {
  /**
   * "" asks about the whole server.
   */
  'service'?: (string);
}

export interface HealthCheckRequest__Output {
  /**
   * "" asks about the whole server.
   */
  'service': (string);
}
