import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Where Anchorage's own .proto files are: apart from proto/load.ts
// so that the CLI's admin client (cli/client.ts) finds them without loading
// @grpc/grpc-js and @grpc/proto-loader.

/** The proto/ source folder, both from the TypeScript tree and from dist/. */
export function protoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [here, join(here, '..', '..', 'proto')]) {
    if (existsSync(join(candidate, 'anchorage'))) return candidate;
  }
  throw new Error(`proto: cannot find the .proto files near ${here}`);
}
