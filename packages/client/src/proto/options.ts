// How every Anchorage .proto is decoded, in a module of its own so that a
// caller that decodes with protobufjs alone (the CLI's admin client) gets the
// options without loading @grpc/grpc-js and @grpc/proto-loader.

/**
 * Must match the flags in scripts/gen-proto.sh, or the generated types lie.
 * Usable both as proto-loader options and as protobufjs conversion options.
 */
export const PROTO_LOADER_OPTIONS = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;
