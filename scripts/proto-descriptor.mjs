// Writes <out>/admin.descriptor.json: for each admin method, its request and
// response types and a protobufjs JSON root holding only the types they reach.
// The CLI decodes admin answers from it with protobufjs' light build instead
// of parsing admin.proto at every start, and builds only the one method's
// types (building the whole service costs more than the rest of a command;
// cli/client.ts, issue 17's start time).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';

const out = process.argv[2];
if (!out) throw new Error('usage: node scripts/proto-descriptor.mjs OUT_DIR');
const root = new protobuf.Root();
root.loadSync('proto/anchorage/admin/v1/admin.proto', { keepCase: true });
root.resolveAll();
const service = root.lookupService('anchorage.admin.v1.Admin');

/** The top-level definitions (children of their package) that `type` needs. */
function reach(type, seen = new Map()) {
  let top = type;
  while (!(top.parent instanceof protobuf.Namespace) || top.parent instanceof protobuf.Type) top = top.parent;
  if (seen.has(top.fullName)) return seen;
  seen.set(top.fullName, top);
  if (type instanceof protobuf.Type) for (const f of type.fieldsArray) if (f.resolvedType) reach(f.resolvedType, seen);
  return seen;
}

/** A JSON root with these definitions under their packages. */
function subset(defs) {
  const json = {};
  for (const def of defs) {
    let node = json;
    for (const part of def.parent.fullName.split('.').filter(Boolean)) node = ((node.nested ??= {})[part] ??= {});
    (node.nested ??= {})[def.name] = def.toJSON();
  }
  return json;
}

const methods = {};
for (const m of service.methodsArray) {
  const defs = reach(m.resolvedResponseType, reach(m.resolvedRequestType));
  methods[m.name] = {
    requestType: m.resolvedRequestType.fullName.slice(1),
    responseType: m.resolvedResponseType.fullName.slice(1),
    root: subset([...defs.values()]),
  };
}
writeFileSync(join(out, 'admin.descriptor.json'), JSON.stringify({ service: service.fullName.slice(1), methods }) + '\n');
