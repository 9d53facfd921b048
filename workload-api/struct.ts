import type { ListValue } from '@anchorage/client/proto/gen/google/protobuf/ListValue';
import type { Struct } from '@anchorage/client/proto/gen/google/protobuf/Struct';
import type { Value } from '@anchorage/client/proto/gen/google/protobuf/Value';

/**
 * JSON → `google.protobuf.Struct`, for the claims of ValidateJWTSVIDResponse.
 *
 * The well-known types come from protobufjs's built-in descriptors, whose
 * field names are camelCase (`numberValue`, `structValue`…) even though we
 * load our own protos with keepCase; the generated types in proto/gen say so
 * and the wire test checks it. `kind` names the oneof member explicitly so
 * the encoder never has to guess which member is set.
 */
export function toStruct(obj: Record<string, unknown>): Struct {
  const fields: Record<string, Value> = {};
  for (const [k, v] of Object.entries(obj)) {
    // JSON objects cannot carry `undefined`; a claims object from JSON.parse
    // never does, but a hand-built one might, and Struct has no such value.
    if (v === undefined) continue;
    fields[k] = toValue(v);
  }
  return { fields };
}

/**
 * One JSON value as `google.protobuf.Value`. Anything JSON cannot express
 * (functions, bigints, symbols) is a programming error upstream, not caller
 * input, so it becomes null rather than failing the whole response.
 */
export function toValue(v: unknown): Value {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE', kind: 'nullValue' };
  switch (typeof v) {
    case 'number':
      return { numberValue: v, kind: 'numberValue' };
    case 'string':
      return { stringValue: v, kind: 'stringValue' };
    case 'boolean':
      return { boolValue: v, kind: 'boolValue' };
    case 'object':
      if (Array.isArray(v)) {
        const list: ListValue = { values: v.map((item) => toValue(item)) };
        return { listValue: list, kind: 'listValue' };
      }
      return { structValue: toStruct(v as Record<string, unknown>), kind: 'structValue' };
    default:
      return { nullValue: 'NULL_VALUE', kind: 'nullValue' };
  }
}
