// The server's node attestors by type: the one place that knows every
// built-in. The config (`node_attestors`) chooses which are enabled and
// gives their settings; an agent asking for any other type is refused.
import { invalid } from '../../common/errors.js';
import type { PcrSelectionWire } from '../../common/attestation-wire.js';
import type { DataStore } from '../datastore/DataStore.js';
import { JOIN_TOKEN, JoinTokenAttestor } from './join-token.js';
import type { NodeAttestor } from './NodeAttestor.js';
import { TPM, TpmAttestor } from './tpm.js';
import { caDirFiles, loadCaCertificates } from './x509-chain.js';
import { X509POP, X509PopAttestor } from './x509pop.js';

/** Every built-in server node attestor type. */
export const NODE_ATTESTOR_TYPES = [JOIN_TOKEN, TPM, X509POP] as const;
export type NodeAttestorType = (typeof NODE_ATTESTOR_TYPES)[number];

/** `node_attestors.tpm`, paths absolute. */
export interface TpmSettings {
  ek_ca_dir?: string;
  ek_hashes?: string[];
  pcrs: PcrSelectionWire[];
}

/** `node_attestors.x509pop`, path absolute. */
export interface X509PopSettings {
  ca_bundle_file: string;
}

/** `node_attestors`: the enabled attestors and their settings. */
export interface NodeAttestorsConfig {
  join_token?: Record<string, never>;
  tpm?: TpmSettings;
  x509pop?: X509PopSettings;
}

/** The default of `node_attestors`. */
export const DEFAULT_NODE_ATTESTORS: NodeAttestorType[] = [JOIN_TOKEN];

/** What any server node attestor may need. */
export interface NodeAttestorDeps {
  datastore: DataStore;
  /** Seconds since the epoch. */
  now: () => number;
}

const FACTORIES: { [K in NodeAttestorType]: (deps: NodeAttestorDeps, settings: NonNullable<NodeAttestorsConfig[K]>) => NodeAttestor } = {
  join_token: (deps) => new JoinTokenAttestor(deps),
  tpm: (deps, s) =>
    new TpmAttestor({
      ekCas: s.ek_ca_dir === undefined ? [] : loadCaCertificates(caDirFiles(s.ek_ca_dir, 'tpm.ek_ca_dir'), 'tpm.ek_ca_dir'),
      ekHashes: new Set(s.ek_hashes ?? []),
      pcrs: s.pcrs,
      now: deps.now,
    }),
  x509pop: (deps, s) => new X509PopAttestor({ cas: loadCaCertificates([s.ca_bundle_file], 'x509pop.ca_bundle_file'), now: deps.now }),
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

  /** The attestors of the config's `node_attestors`, in the order of {@link NODE_ATTESTOR_TYPES}. */
  static fromConfig(cfg: NodeAttestorsConfig, deps: NodeAttestorDeps): NodeAttestorRegistry {
    const make = <K extends NodeAttestorType>(t: K) => FACTORIES[t](deps, cfg[t]!);
    return new NodeAttestorRegistry(NODE_ATTESTOR_TYPES.filter((t) => cfg[t] !== undefined).map(make));
  }

  /** The built-in attestors named by `types`, each one that needs no settings (join_token); an unknown type is an error. */
  static fromTypes(types: readonly string[], deps: NodeAttestorDeps): NodeAttestorRegistry {
    return new NodeAttestorRegistry(
      types.map((t) => {
        if (!(NODE_ATTESTOR_TYPES as readonly string[]).includes(t)) {
          throw invalid(`node attestor: unknown type "${t}" (known: ${NODE_ATTESTOR_TYPES.join(', ')})`);
        }
        if (t !== JOIN_TOKEN) throw invalid(`node attestor: "${t}" needs settings: configure it under node_attestors`);
        return FACTORIES.join_token(deps, {});
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
