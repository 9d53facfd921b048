import { createHash, X509Certificate } from 'node:crypto';
import type { TrustAnchor } from '../../proto/gen/anchorage/admin/v1/TrustAnchor.js';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { anchorIds } from '../datastore/anchor-ids.js';
import type { AttestedAgent, DataStore, JournalEntry } from '../datastore/DataStore.js';
import type { CaManager } from '../manager.js';

/**
 * ListTrustAnchors: every trust anchor the trust domain relies on, own and
 * federated, for `anchorage anchors list`.
 */

const sha256 = (der: Uint8Array) => createHash('sha256').update(der).digest('hex');
const seconds = (date: string) => Math.floor(Date.parse(date) / 1000);

export interface AnchorDeps {
  datastore: DataStore;
  ca: CaManager;
  /** Where the CA's own keys are: "pkcs11", "disk" or "memory". */
  keyManagerKind: string;
  rootKeyManagerKind?: string;
}

export async function listTrustAnchors(deps: AnchorDeps): Promise<{ anchors: TrustAnchor[]; agents: number }> {
  const { datastore: ds, ca } = deps;
  const [journal, bundles, relationships, sightingList, allAgents] = await Promise.all([
    ca.journal(),
    ds.listBundles(),
    ds.listRelationships(),
    ds.listAnchorSightings(),
    ds.listAgents(),
  ]);
  const agents = allAgents.filter((a) => !a.evicted);
  const sightings = new Map(sightingList.map((s) => [`${s.trustDomain} ${s.anchor}`, s]));
  const td = ca.trustDomain.name;
  const own = ca.bundle();
  const inOwnBundle = new Set(anchorIds(own.marshal()));

  /** Own anchors: agents whose bundle has reached the sequence that first had it. */
  const holdingOwn = (anchor: string): number => {
    const s = sightings.get(`${td} ${anchor}`);
    if (!s || !inOwnBundle.has(anchor)) return 0;
    return agents.filter((a) => a.report && a.report.bundleSequence >= s.firstSequence).length;
  };
  /** Federated anchors: agents that reported after it was stored (every sync carries every federated bundle). */
  const holdingFederated = (trustDomain: string, anchor: string, list: AttestedAgent[]): number => {
    const s = sightings.get(`${trustDomain} ${anchor}`);
    return s ? list.filter((a) => a.report && a.report.seenAt >= s.firstSeenAt).length : 0;
  };

  const anchors: TrustAnchor[] = [];
  const ownSource = (r: JournalEntry) => {
    if (r.kind === 'root' && !deps.rootKeyManagerKind) return 'upstream';
    return `${r.kind === 'root' ? deps.rootKeyManagerKind : deps.keyManagerKind} label ${r.keyId}`;
  };
  // Revoked authorities are relied on by no one any more (anchorage authority ... revoke).
  for (const r of journal.filter((row) => row.status !== 'preparing' && !row.revokedAt)) {
    const status = r.taintedAt ? `${r.status}, tainted` : r.status;
    const base = { trust_domain: td, federated: false, status, source: ownSource(r), not_before: r.notBefore, not_after: r.notAfter };
    if (r.kind === 'jwt') {
      const anchor = `jwt:${r.kid ?? ''}`;
      anchors.push({ ...base, kind: 'jwt', kid: r.kid ?? '', first_seen_at: sightings.get(`${td} ${anchor}`)?.firstSeenAt ?? 0, agents_holding: holdingOwn(anchor) });
    } else if (r.certDer) {
      const cert = new X509Certificate(r.certDer);
      const fingerprint = sha256(r.certDer);
      const intermediate = r.kind === 'x509';
      anchors.push({
        ...base,
        kind: intermediate ? 'intermediate' : 'root',
        fingerprint,
        subject: cert.subject.replace(/\n/g, ', '),
        first_seen_at: intermediate ? r.createdAt : (sightings.get(`${td} x509:${fingerprint}`)?.firstSeenAt ?? 0),
        agents_holding: intermediate ? -1 : holdingOwn(`x509:${fingerprint}`),
      });
    }
  }
  const endpoints = new Map(relationships.map((r) => [r.trustDomain, r.bundleEndpointUrl]));
  for (const b of bundles.filter((x) => x.trustDomain !== td)) {
    const parsed = SpiffeBundle.parse(TrustDomain.parse(b.trustDomain), b.document);
    const base = { trust_domain: b.trustDomain, federated: true, status: '', source: endpoints.has(b.trustDomain) ? `endpoint ${endpoints.get(b.trustDomain)}` : 'static' };
    for (const der of parsed.x509.authorities()) {
      const cert = new X509Certificate(der);
      const fingerprint = sha256(der);
      anchors.push({
        ...base,
        kind: 'x509-authority',
        fingerprint,
        subject: cert.subject.replace(/\n/g, ', '),
        not_before: seconds(cert.validFrom),
        not_after: seconds(cert.validTo),
        first_seen_at: sightings.get(`${b.trustDomain} x509:${fingerprint}`)?.firstSeenAt ?? 0,
        agents_holding: holdingFederated(b.trustDomain, `x509:${fingerprint}`, agents),
      });
    }
    for (const kid of parsed.jwt.keys().keys()) {
      anchors.push({
        ...base,
        kind: 'jwt',
        kid,
        first_seen_at: sightings.get(`${b.trustDomain} jwt:${kid}`)?.firstSeenAt ?? 0,
        agents_holding: holdingFederated(b.trustDomain, `jwt:${kid}`, agents),
      });
    }
  }
  return { anchors, agents: agents.length };
}
