// The server's node attestors by type: the one place that knows every
// built-in. The config (`node_attestors`) chooses which are enabled; an
// agent asking for any other type is refused.
import { invalid } from '@anchorage/client/errors';
import type { DataStore } from '../datastore/DataStore.js';
import { JOIN_TOKEN, JoinTokenAttestor } from './join-token.js';
import type { NodeAttestor } from './NodeAttestor.js';

/** Every built-in server node attestor type. tpm and x509pop come next. */
export const NODE_ATTESTOR_TYPES = [JOIN_TOKEN] as const;
export type NodeAttestorType = (typeof NODE_ATTESTOR_TYPES)[number];

/** The default of `node_attestors`. */
export const DEFAULT_NODE_ATTESTORS: NodeAttestorType[] = [JOIN_TOKEN];

/** What any server node attestor may need. */
export interface NodeAttestorDeps {
  datastore: DataStore;
  /** Seconds since the epoch. */
  now: () => number;
}

const FACTORIES: Record<NodeAttestorType, (deps: NodeAttestorDeps) => NodeAttestor> = {
  join_token: (deps) => new JoinTokenAttestor(deps),
};

/** The enabled server node attestors, by type. */
export class NodeAttestorRegistry {
  readonly #byType = new Map<string, NodeAttestor>();

  /** A registry of these attestors; two of one type is an error. */
  constructor(attestors: readonly NodeAttestor[]) {
    for (const a of attestors) {
      if (this.#byType.has(a.type)) throw invalid(`node attestor: "${a.type}" is listed twice`);
      this.#byType.set(a.type, a);
    }
  }

  /** The built-in attestors named by `types` (the config's list); an unknown type is an error. */
  static fromTypes(types: readonly string[], deps: NodeAttestorDeps): NodeAttestorRegistry {
    return new NodeAttestorRegistry(
      types.map((t) => {
        const make = Object.hasOwn(FACTORIES, t) ? FACTORIES[t as NodeAttestorType] : undefined;
        if (!make) throw invalid(`node attestor: unknown type "${t}" (known: ${NODE_ATTESTOR_TYPES.join(', ')})`);
        return make(deps);
      }),
    );
  }

  /** The enabled types, in config order. */
  types(): string[] {
    return [...this.#byType.keys()];
  }

  /** The attestor for `type`, or undefined when it is not enabled. */
  get(type: string): NodeAttestor | undefined {
    return this.#byType.get(type);
  }
}
