// Writes the admin service's protobufjs JSON descriptor to <out>/admin.descriptor.json.
// The CLI decodes admin answers from it with protobufjs' light build instead of
// parsing admin.proto at every start (cli/client.ts; issue 17's start time).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';

const out = process.argv[2];
if (!out) throw new Error('usage: node scripts/proto-descriptor.mjs OUT_DIR');
const root = new protobuf.Root();
root.loadSync('proto/anchorage/admin/v1/admin.proto', { keepCase: true });
writeFileSync(join(out, 'admin.descriptor.json'), JSON.stringify(root.toJSON(), null, 1) + '\n');
