import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AdminClient as _anchorage_admin_v1_AdminClient, AdminDefinition as _anchorage_admin_v1_AdminDefinition } from './anchorage/admin/v1/Admin.js';
import type { Agent as _anchorage_admin_v1_Agent, Agent__Output as _anchorage_admin_v1_Agent__Output } from './anchorage/admin/v1/Agent.js';
import type { AgentBan as _anchorage_admin_v1_AgentBan, AgentBan__Output as _anchorage_admin_v1_AgentBan__Output } from './anchorage/admin/v1/AgentBan.js';
import type { AuditRecord as _anchorage_admin_v1_AuditRecord, AuditRecord__Output as _anchorage_admin_v1_AuditRecord__Output } from './anchorage/admin/v1/AuditRecord.js';
import type { AuditVerification as _anchorage_admin_v1_AuditVerification, AuditVerification__Output as _anchorage_admin_v1_AuditVerification__Output } from './anchorage/admin/v1/AuditVerification.js';
import type { Authority as _anchorage_admin_v1_Authority, Authority__Output as _anchorage_admin_v1_Authority__Output } from './anchorage/admin/v1/Authority.js';
import type { AuthorityChange as _anchorage_admin_v1_AuthorityChange, AuthorityChange__Output as _anchorage_admin_v1_AuthorityChange__Output } from './anchorage/admin/v1/AuthorityChange.js';
import type { AuthorityRequest as _anchorage_admin_v1_AuthorityRequest, AuthorityRequest__Output as _anchorage_admin_v1_AuthorityRequest__Output } from './anchorage/admin/v1/AuthorityRequest.js';
import type { BanAgentRequest as _anchorage_admin_v1_BanAgentRequest, BanAgentRequest__Output as _anchorage_admin_v1_BanAgentRequest__Output } from './anchorage/admin/v1/BanAgentRequest.js';
import type { BatchCreateEntryRequest as _anchorage_admin_v1_BatchCreateEntryRequest, BatchCreateEntryRequest__Output as _anchorage_admin_v1_BatchCreateEntryRequest__Output } from './anchorage/admin/v1/BatchCreateEntryRequest.js';
import type { BatchCreateEntryResponse as _anchorage_admin_v1_BatchCreateEntryResponse, BatchCreateEntryResponse__Output as _anchorage_admin_v1_BatchCreateEntryResponse__Output } from './anchorage/admin/v1/BatchCreateEntryResponse.js';
import type { Bundle as _anchorage_admin_v1_Bundle, Bundle__Output as _anchorage_admin_v1_Bundle__Output } from './anchorage/admin/v1/Bundle.js';
import type { CAKey as _anchorage_admin_v1_CAKey, CAKey__Output as _anchorage_admin_v1_CAKey__Output } from './anchorage/admin/v1/CAKey.js';
import type { CAStatus as _anchorage_admin_v1_CAStatus, CAStatus__Output as _anchorage_admin_v1_CAStatus__Output } from './anchorage/admin/v1/CAStatus.js';
import type { CreateEntryRequest as _anchorage_admin_v1_CreateEntryRequest, CreateEntryRequest__Output as _anchorage_admin_v1_CreateEntryRequest__Output } from './anchorage/admin/v1/CreateEntryRequest.js';
import type { CreateFederationRelationshipRequest as _anchorage_admin_v1_CreateFederationRelationshipRequest, CreateFederationRelationshipRequest__Output as _anchorage_admin_v1_CreateFederationRelationshipRequest__Output } from './anchorage/admin/v1/CreateFederationRelationshipRequest.js';
import type { CreateJoinTokenRequest as _anchorage_admin_v1_CreateJoinTokenRequest, CreateJoinTokenRequest__Output as _anchorage_admin_v1_CreateJoinTokenRequest__Output } from './anchorage/admin/v1/CreateJoinTokenRequest.js';
import type { DeleteEntryRequest as _anchorage_admin_v1_DeleteEntryRequest, DeleteEntryRequest__Output as _anchorage_admin_v1_DeleteEntryRequest__Output } from './anchorage/admin/v1/DeleteEntryRequest.js';
import type { DeleteFederatedBundleRequest as _anchorage_admin_v1_DeleteFederatedBundleRequest, DeleteFederatedBundleRequest__Output as _anchorage_admin_v1_DeleteFederatedBundleRequest__Output } from './anchorage/admin/v1/DeleteFederatedBundleRequest.js';
import type { DeleteFederationRelationshipRequest as _anchorage_admin_v1_DeleteFederationRelationshipRequest, DeleteFederationRelationshipRequest__Output as _anchorage_admin_v1_DeleteFederationRelationshipRequest__Output } from './anchorage/admin/v1/DeleteFederationRelationshipRequest.js';
import type { Entry as _anchorage_admin_v1_Entry, Entry__Output as _anchorage_admin_v1_Entry__Output } from './anchorage/admin/v1/Entry.js';
import type { EntryPatch as _anchorage_admin_v1_EntryPatch, EntryPatch__Output as _anchorage_admin_v1_EntryPatch__Output } from './anchorage/admin/v1/EntryPatch.js';
import type { EntryResult as _anchorage_admin_v1_EntryResult, EntryResult__Output as _anchorage_admin_v1_EntryResult__Output } from './anchorage/admin/v1/EntryResult.js';
import type { EvictAgentRequest as _anchorage_admin_v1_EvictAgentRequest, EvictAgentRequest__Output as _anchorage_admin_v1_EvictAgentRequest__Output } from './anchorage/admin/v1/EvictAgentRequest.js';
import type { FederatedBundle as _anchorage_admin_v1_FederatedBundle, FederatedBundle__Output as _anchorage_admin_v1_FederatedBundle__Output } from './anchorage/admin/v1/FederatedBundle.js';
import type { FederatedKey as _anchorage_admin_v1_FederatedKey, FederatedKey__Output as _anchorage_admin_v1_FederatedKey__Output } from './anchorage/admin/v1/FederatedKey.js';
import type { FederationRelationship as _anchorage_admin_v1_FederationRelationship, FederationRelationship__Output as _anchorage_admin_v1_FederationRelationship__Output } from './anchorage/admin/v1/FederationRelationship.js';
import type { GetAgentRequest as _anchorage_admin_v1_GetAgentRequest, GetAgentRequest__Output as _anchorage_admin_v1_GetAgentRequest__Output } from './anchorage/admin/v1/GetAgentRequest.js';
import type { GetBundleRequest as _anchorage_admin_v1_GetBundleRequest, GetBundleRequest__Output as _anchorage_admin_v1_GetBundleRequest__Output } from './anchorage/admin/v1/GetBundleRequest.js';
import type { GetCAStatusRequest as _anchorage_admin_v1_GetCAStatusRequest, GetCAStatusRequest__Output as _anchorage_admin_v1_GetCAStatusRequest__Output } from './anchorage/admin/v1/GetCAStatusRequest.js';
import type { GetEntryRequest as _anchorage_admin_v1_GetEntryRequest, GetEntryRequest__Output as _anchorage_admin_v1_GetEntryRequest__Output } from './anchorage/admin/v1/GetEntryRequest.js';
import type { GetFederationRelationshipRequest as _anchorage_admin_v1_GetFederationRelationshipRequest, GetFederationRelationshipRequest__Output as _anchorage_admin_v1_GetFederationRelationshipRequest__Output } from './anchorage/admin/v1/GetFederationRelationshipRequest.js';
import type { GetKeyProtectionRequest as _anchorage_admin_v1_GetKeyProtectionRequest, GetKeyProtectionRequest__Output as _anchorage_admin_v1_GetKeyProtectionRequest__Output } from './anchorage/admin/v1/GetKeyProtectionRequest.js';
import type { JoinToken as _anchorage_admin_v1_JoinToken, JoinToken__Output as _anchorage_admin_v1_JoinToken__Output } from './anchorage/admin/v1/JoinToken.js';
import type { KeyProtection as _anchorage_admin_v1_KeyProtection, KeyProtection__Output as _anchorage_admin_v1_KeyProtection__Output } from './anchorage/admin/v1/KeyProtection.js';
import type { KeyProtectionReport as _anchorage_admin_v1_KeyProtectionReport, KeyProtectionReport__Output as _anchorage_admin_v1_KeyProtectionReport__Output } from './anchorage/admin/v1/KeyProtectionReport.js';
import type { LaggingAgent as _anchorage_admin_v1_LaggingAgent, LaggingAgent__Output as _anchorage_admin_v1_LaggingAgent__Output } from './anchorage/admin/v1/LaggingAgent.js';
import type { ListAgentsRequest as _anchorage_admin_v1_ListAgentsRequest, ListAgentsRequest__Output as _anchorage_admin_v1_ListAgentsRequest__Output } from './anchorage/admin/v1/ListAgentsRequest.js';
import type { ListAgentsResponse as _anchorage_admin_v1_ListAgentsResponse, ListAgentsResponse__Output as _anchorage_admin_v1_ListAgentsResponse__Output } from './anchorage/admin/v1/ListAgentsResponse.js';
import type { ListAuditRecordsRequest as _anchorage_admin_v1_ListAuditRecordsRequest, ListAuditRecordsRequest__Output as _anchorage_admin_v1_ListAuditRecordsRequest__Output } from './anchorage/admin/v1/ListAuditRecordsRequest.js';
import type { ListAuthoritiesRequest as _anchorage_admin_v1_ListAuthoritiesRequest, ListAuthoritiesRequest__Output as _anchorage_admin_v1_ListAuthoritiesRequest__Output } from './anchorage/admin/v1/ListAuthoritiesRequest.js';
import type { ListAuthoritiesResponse as _anchorage_admin_v1_ListAuthoritiesResponse, ListAuthoritiesResponse__Output as _anchorage_admin_v1_ListAuthoritiesResponse__Output } from './anchorage/admin/v1/ListAuthoritiesResponse.js';
import type { ListEntriesRequest as _anchorage_admin_v1_ListEntriesRequest, ListEntriesRequest__Output as _anchorage_admin_v1_ListEntriesRequest__Output } from './anchorage/admin/v1/ListEntriesRequest.js';
import type { ListEntriesResponse as _anchorage_admin_v1_ListEntriesResponse, ListEntriesResponse__Output as _anchorage_admin_v1_ListEntriesResponse__Output } from './anchorage/admin/v1/ListEntriesResponse.js';
import type { ListFederatedBundlesRequest as _anchorage_admin_v1_ListFederatedBundlesRequest, ListFederatedBundlesRequest__Output as _anchorage_admin_v1_ListFederatedBundlesRequest__Output } from './anchorage/admin/v1/ListFederatedBundlesRequest.js';
import type { ListFederatedBundlesResponse as _anchorage_admin_v1_ListFederatedBundlesResponse, ListFederatedBundlesResponse__Output as _anchorage_admin_v1_ListFederatedBundlesResponse__Output } from './anchorage/admin/v1/ListFederatedBundlesResponse.js';
import type { ListFederationRelationshipsRequest as _anchorage_admin_v1_ListFederationRelationshipsRequest, ListFederationRelationshipsRequest__Output as _anchorage_admin_v1_ListFederationRelationshipsRequest__Output } from './anchorage/admin/v1/ListFederationRelationshipsRequest.js';
import type { ListFederationRelationshipsResponse as _anchorage_admin_v1_ListFederationRelationshipsResponse, ListFederationRelationshipsResponse__Output as _anchorage_admin_v1_ListFederationRelationshipsResponse__Output } from './anchorage/admin/v1/ListFederationRelationshipsResponse.js';
import type { ListTrustAnchorsRequest as _anchorage_admin_v1_ListTrustAnchorsRequest, ListTrustAnchorsRequest__Output as _anchorage_admin_v1_ListTrustAnchorsRequest__Output } from './anchorage/admin/v1/ListTrustAnchorsRequest.js';
import type { ListTrustAnchorsResponse as _anchorage_admin_v1_ListTrustAnchorsResponse, ListTrustAnchorsResponse__Output as _anchorage_admin_v1_ListTrustAnchorsResponse__Output } from './anchorage/admin/v1/ListTrustAnchorsResponse.js';
import type { MintJWTSVIDRequest as _anchorage_admin_v1_MintJWTSVIDRequest, MintJWTSVIDRequest__Output as _anchorage_admin_v1_MintJWTSVIDRequest__Output } from './anchorage/admin/v1/MintJWTSVIDRequest.js';
import type { MintJWTSVIDResponse as _anchorage_admin_v1_MintJWTSVIDResponse, MintJWTSVIDResponse__Output as _anchorage_admin_v1_MintJWTSVIDResponse__Output } from './anchorage/admin/v1/MintJWTSVIDResponse.js';
import type { MintX509SVIDRequest as _anchorage_admin_v1_MintX509SVIDRequest, MintX509SVIDRequest__Output as _anchorage_admin_v1_MintX509SVIDRequest__Output } from './anchorage/admin/v1/MintX509SVIDRequest.js';
import type { MintX509SVIDResponse as _anchorage_admin_v1_MintX509SVIDResponse, MintX509SVIDResponse__Output as _anchorage_admin_v1_MintX509SVIDResponse__Output } from './anchorage/admin/v1/MintX509SVIDResponse.js';
import type { RefreshFederationRelationshipRequest as _anchorage_admin_v1_RefreshFederationRelationshipRequest, RefreshFederationRelationshipRequest__Output as _anchorage_admin_v1_RefreshFederationRelationshipRequest__Output } from './anchorage/admin/v1/RefreshFederationRelationshipRequest.js';
import type { Selector as _anchorage_admin_v1_Selector, Selector__Output as _anchorage_admin_v1_Selector__Output } from './anchorage/admin/v1/Selector.js';
import type { SelectorList as _anchorage_admin_v1_SelectorList, SelectorList__Output as _anchorage_admin_v1_SelectorList__Output } from './anchorage/admin/v1/SelectorList.js';
import type { SetFederatedBundleRequest as _anchorage_admin_v1_SetFederatedBundleRequest, SetFederatedBundleRequest__Output as _anchorage_admin_v1_SetFederatedBundleRequest__Output } from './anchorage/admin/v1/SetFederatedBundleRequest.js';
import type { StringList as _anchorage_admin_v1_StringList, StringList__Output as _anchorage_admin_v1_StringList__Output } from './anchorage/admin/v1/StringList.js';
import type { TrustAnchor as _anchorage_admin_v1_TrustAnchor, TrustAnchor__Output as _anchorage_admin_v1_TrustAnchor__Output } from './anchorage/admin/v1/TrustAnchor.js';
import type { UnbanAgentRequest as _anchorage_admin_v1_UnbanAgentRequest, UnbanAgentRequest__Output as _anchorage_admin_v1_UnbanAgentRequest__Output } from './anchorage/admin/v1/UnbanAgentRequest.js';
import type { UpdateEntryRequest as _anchorage_admin_v1_UpdateEntryRequest, UpdateEntryRequest__Output as _anchorage_admin_v1_UpdateEntryRequest__Output } from './anchorage/admin/v1/UpdateEntryRequest.js';
import type { UpdateFederationRelationshipRequest as _anchorage_admin_v1_UpdateFederationRelationshipRequest, UpdateFederationRelationshipRequest__Output as _anchorage_admin_v1_UpdateFederationRelationshipRequest__Output } from './anchorage/admin/v1/UpdateFederationRelationshipRequest.js';
import type { VerifyAuditRequest as _anchorage_admin_v1_VerifyAuditRequest, VerifyAuditRequest__Output as _anchorage_admin_v1_VerifyAuditRequest__Output } from './anchorage/admin/v1/VerifyAuditRequest.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  anchorage: {
    admin: {
      v1: {
        Admin: SubtypeConstructor<typeof grpc.Client, _anchorage_admin_v1_AdminClient> & { service: _anchorage_admin_v1_AdminDefinition }
        Agent: MessageTypeDefinition<_anchorage_admin_v1_Agent, _anchorage_admin_v1_Agent__Output>
        AgentBan: MessageTypeDefinition<_anchorage_admin_v1_AgentBan, _anchorage_admin_v1_AgentBan__Output>
        AuditRecord: MessageTypeDefinition<_anchorage_admin_v1_AuditRecord, _anchorage_admin_v1_AuditRecord__Output>
        AuditVerification: MessageTypeDefinition<_anchorage_admin_v1_AuditVerification, _anchorage_admin_v1_AuditVerification__Output>
        Authority: MessageTypeDefinition<_anchorage_admin_v1_Authority, _anchorage_admin_v1_Authority__Output>
        AuthorityChange: MessageTypeDefinition<_anchorage_admin_v1_AuthorityChange, _anchorage_admin_v1_AuthorityChange__Output>
        AuthorityRequest: MessageTypeDefinition<_anchorage_admin_v1_AuthorityRequest, _anchorage_admin_v1_AuthorityRequest__Output>
        BanAgentRequest: MessageTypeDefinition<_anchorage_admin_v1_BanAgentRequest, _anchorage_admin_v1_BanAgentRequest__Output>
        BatchCreateEntryRequest: MessageTypeDefinition<_anchorage_admin_v1_BatchCreateEntryRequest, _anchorage_admin_v1_BatchCreateEntryRequest__Output>
        BatchCreateEntryResponse: MessageTypeDefinition<_anchorage_admin_v1_BatchCreateEntryResponse, _anchorage_admin_v1_BatchCreateEntryResponse__Output>
        Bundle: MessageTypeDefinition<_anchorage_admin_v1_Bundle, _anchorage_admin_v1_Bundle__Output>
        CAKey: MessageTypeDefinition<_anchorage_admin_v1_CAKey, _anchorage_admin_v1_CAKey__Output>
        CAStatus: MessageTypeDefinition<_anchorage_admin_v1_CAStatus, _anchorage_admin_v1_CAStatus__Output>
        CreateEntryRequest: MessageTypeDefinition<_anchorage_admin_v1_CreateEntryRequest, _anchorage_admin_v1_CreateEntryRequest__Output>
        CreateFederationRelationshipRequest: MessageTypeDefinition<_anchorage_admin_v1_CreateFederationRelationshipRequest, _anchorage_admin_v1_CreateFederationRelationshipRequest__Output>
        CreateJoinTokenRequest: MessageTypeDefinition<_anchorage_admin_v1_CreateJoinTokenRequest, _anchorage_admin_v1_CreateJoinTokenRequest__Output>
        DeleteEntryRequest: MessageTypeDefinition<_anchorage_admin_v1_DeleteEntryRequest, _anchorage_admin_v1_DeleteEntryRequest__Output>
        DeleteFederatedBundleRequest: MessageTypeDefinition<_anchorage_admin_v1_DeleteFederatedBundleRequest, _anchorage_admin_v1_DeleteFederatedBundleRequest__Output>
        DeleteFederationRelationshipRequest: MessageTypeDefinition<_anchorage_admin_v1_DeleteFederationRelationshipRequest, _anchorage_admin_v1_DeleteFederationRelationshipRequest__Output>
        Entry: MessageTypeDefinition<_anchorage_admin_v1_Entry, _anchorage_admin_v1_Entry__Output>
        EntryPatch: MessageTypeDefinition<_anchorage_admin_v1_EntryPatch, _anchorage_admin_v1_EntryPatch__Output>
        EntryResult: MessageTypeDefinition<_anchorage_admin_v1_EntryResult, _anchorage_admin_v1_EntryResult__Output>
        EvictAgentRequest: MessageTypeDefinition<_anchorage_admin_v1_EvictAgentRequest, _anchorage_admin_v1_EvictAgentRequest__Output>
        FederatedBundle: MessageTypeDefinition<_anchorage_admin_v1_FederatedBundle, _anchorage_admin_v1_FederatedBundle__Output>
        FederatedKey: MessageTypeDefinition<_anchorage_admin_v1_FederatedKey, _anchorage_admin_v1_FederatedKey__Output>
        FederationRelationship: MessageTypeDefinition<_anchorage_admin_v1_FederationRelationship, _anchorage_admin_v1_FederationRelationship__Output>
        GetAgentRequest: MessageTypeDefinition<_anchorage_admin_v1_GetAgentRequest, _anchorage_admin_v1_GetAgentRequest__Output>
        GetBundleRequest: MessageTypeDefinition<_anchorage_admin_v1_GetBundleRequest, _anchorage_admin_v1_GetBundleRequest__Output>
        GetCAStatusRequest: MessageTypeDefinition<_anchorage_admin_v1_GetCAStatusRequest, _anchorage_admin_v1_GetCAStatusRequest__Output>
        GetEntryRequest: MessageTypeDefinition<_anchorage_admin_v1_GetEntryRequest, _anchorage_admin_v1_GetEntryRequest__Output>
        GetFederationRelationshipRequest: MessageTypeDefinition<_anchorage_admin_v1_GetFederationRelationshipRequest, _anchorage_admin_v1_GetFederationRelationshipRequest__Output>
        GetKeyProtectionRequest: MessageTypeDefinition<_anchorage_admin_v1_GetKeyProtectionRequest, _anchorage_admin_v1_GetKeyProtectionRequest__Output>
        JoinToken: MessageTypeDefinition<_anchorage_admin_v1_JoinToken, _anchorage_admin_v1_JoinToken__Output>
        KeyProtection: MessageTypeDefinition<_anchorage_admin_v1_KeyProtection, _anchorage_admin_v1_KeyProtection__Output>
        KeyProtectionReport: MessageTypeDefinition<_anchorage_admin_v1_KeyProtectionReport, _anchorage_admin_v1_KeyProtectionReport__Output>
        LaggingAgent: MessageTypeDefinition<_anchorage_admin_v1_LaggingAgent, _anchorage_admin_v1_LaggingAgent__Output>
        ListAgentsRequest: MessageTypeDefinition<_anchorage_admin_v1_ListAgentsRequest, _anchorage_admin_v1_ListAgentsRequest__Output>
        ListAgentsResponse: MessageTypeDefinition<_anchorage_admin_v1_ListAgentsResponse, _anchorage_admin_v1_ListAgentsResponse__Output>
        ListAuditRecordsRequest: MessageTypeDefinition<_anchorage_admin_v1_ListAuditRecordsRequest, _anchorage_admin_v1_ListAuditRecordsRequest__Output>
        ListAuthoritiesRequest: MessageTypeDefinition<_anchorage_admin_v1_ListAuthoritiesRequest, _anchorage_admin_v1_ListAuthoritiesRequest__Output>
        ListAuthoritiesResponse: MessageTypeDefinition<_anchorage_admin_v1_ListAuthoritiesResponse, _anchorage_admin_v1_ListAuthoritiesResponse__Output>
        ListEntriesRequest: MessageTypeDefinition<_anchorage_admin_v1_ListEntriesRequest, _anchorage_admin_v1_ListEntriesRequest__Output>
        ListEntriesResponse: MessageTypeDefinition<_anchorage_admin_v1_ListEntriesResponse, _anchorage_admin_v1_ListEntriesResponse__Output>
        ListFederatedBundlesRequest: MessageTypeDefinition<_anchorage_admin_v1_ListFederatedBundlesRequest, _anchorage_admin_v1_ListFederatedBundlesRequest__Output>
        ListFederatedBundlesResponse: MessageTypeDefinition<_anchorage_admin_v1_ListFederatedBundlesResponse, _anchorage_admin_v1_ListFederatedBundlesResponse__Output>
        ListFederationRelationshipsRequest: MessageTypeDefinition<_anchorage_admin_v1_ListFederationRelationshipsRequest, _anchorage_admin_v1_ListFederationRelationshipsRequest__Output>
        ListFederationRelationshipsResponse: MessageTypeDefinition<_anchorage_admin_v1_ListFederationRelationshipsResponse, _anchorage_admin_v1_ListFederationRelationshipsResponse__Output>
        ListTrustAnchorsRequest: MessageTypeDefinition<_anchorage_admin_v1_ListTrustAnchorsRequest, _anchorage_admin_v1_ListTrustAnchorsRequest__Output>
        ListTrustAnchorsResponse: MessageTypeDefinition<_anchorage_admin_v1_ListTrustAnchorsResponse, _anchorage_admin_v1_ListTrustAnchorsResponse__Output>
        MintJWTSVIDRequest: MessageTypeDefinition<_anchorage_admin_v1_MintJWTSVIDRequest, _anchorage_admin_v1_MintJWTSVIDRequest__Output>
        MintJWTSVIDResponse: MessageTypeDefinition<_anchorage_admin_v1_MintJWTSVIDResponse, _anchorage_admin_v1_MintJWTSVIDResponse__Output>
        MintX509SVIDRequest: MessageTypeDefinition<_anchorage_admin_v1_MintX509SVIDRequest, _anchorage_admin_v1_MintX509SVIDRequest__Output>
        MintX509SVIDResponse: MessageTypeDefinition<_anchorage_admin_v1_MintX509SVIDResponse, _anchorage_admin_v1_MintX509SVIDResponse__Output>
        RefreshFederationRelationshipRequest: MessageTypeDefinition<_anchorage_admin_v1_RefreshFederationRelationshipRequest, _anchorage_admin_v1_RefreshFederationRelationshipRequest__Output>
        Selector: MessageTypeDefinition<_anchorage_admin_v1_Selector, _anchorage_admin_v1_Selector__Output>
        SelectorList: MessageTypeDefinition<_anchorage_admin_v1_SelectorList, _anchorage_admin_v1_SelectorList__Output>
        SetFederatedBundleRequest: MessageTypeDefinition<_anchorage_admin_v1_SetFederatedBundleRequest, _anchorage_admin_v1_SetFederatedBundleRequest__Output>
        StringList: MessageTypeDefinition<_anchorage_admin_v1_StringList, _anchorage_admin_v1_StringList__Output>
        TrustAnchor: MessageTypeDefinition<_anchorage_admin_v1_TrustAnchor, _anchorage_admin_v1_TrustAnchor__Output>
        UnbanAgentRequest: MessageTypeDefinition<_anchorage_admin_v1_UnbanAgentRequest, _anchorage_admin_v1_UnbanAgentRequest__Output>
        UpdateEntryRequest: MessageTypeDefinition<_anchorage_admin_v1_UpdateEntryRequest, _anchorage_admin_v1_UpdateEntryRequest__Output>
        UpdateFederationRelationshipRequest: MessageTypeDefinition<_anchorage_admin_v1_UpdateFederationRelationshipRequest, _anchorage_admin_v1_UpdateFederationRelationshipRequest__Output>
        VerifyAuditRequest: MessageTypeDefinition<_anchorage_admin_v1_VerifyAuditRequest, _anchorage_admin_v1_VerifyAuditRequest__Output>
      }
    }
  }
}

