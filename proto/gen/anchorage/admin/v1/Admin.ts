// Original file: proto/anchorage/admin/v1/admin.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { Agent as _anchorage_admin_v1_Agent, Agent__Output as _anchorage_admin_v1_Agent__Output } from '../../../anchorage/admin/v1/Agent.js';
import type { AgentBan as _anchorage_admin_v1_AgentBan, AgentBan__Output as _anchorage_admin_v1_AgentBan__Output } from '../../../anchorage/admin/v1/AgentBan.js';
import type { AuditRecord as _anchorage_admin_v1_AuditRecord, AuditRecord__Output as _anchorage_admin_v1_AuditRecord__Output } from '../../../anchorage/admin/v1/AuditRecord.js';
import type { AuditVerification as _anchorage_admin_v1_AuditVerification, AuditVerification__Output as _anchorage_admin_v1_AuditVerification__Output } from '../../../anchorage/admin/v1/AuditVerification.js';
import type { AuthorityChange as _anchorage_admin_v1_AuthorityChange, AuthorityChange__Output as _anchorage_admin_v1_AuthorityChange__Output } from '../../../anchorage/admin/v1/AuthorityChange.js';
import type { AuthorityRequest as _anchorage_admin_v1_AuthorityRequest, AuthorityRequest__Output as _anchorage_admin_v1_AuthorityRequest__Output } from '../../../anchorage/admin/v1/AuthorityRequest.js';
import type { BanAgentRequest as _anchorage_admin_v1_BanAgentRequest, BanAgentRequest__Output as _anchorage_admin_v1_BanAgentRequest__Output } from '../../../anchorage/admin/v1/BanAgentRequest.js';
import type { BatchCreateEntryRequest as _anchorage_admin_v1_BatchCreateEntryRequest, BatchCreateEntryRequest__Output as _anchorage_admin_v1_BatchCreateEntryRequest__Output } from '../../../anchorage/admin/v1/BatchCreateEntryRequest.js';
import type { BatchCreateEntryResponse as _anchorage_admin_v1_BatchCreateEntryResponse, BatchCreateEntryResponse__Output as _anchorage_admin_v1_BatchCreateEntryResponse__Output } from '../../../anchorage/admin/v1/BatchCreateEntryResponse.js';
import type { Bundle as _anchorage_admin_v1_Bundle, Bundle__Output as _anchorage_admin_v1_Bundle__Output } from '../../../anchorage/admin/v1/Bundle.js';
import type { CAStatus as _anchorage_admin_v1_CAStatus, CAStatus__Output as _anchorage_admin_v1_CAStatus__Output } from '../../../anchorage/admin/v1/CAStatus.js';
import type { CreateEntryRequest as _anchorage_admin_v1_CreateEntryRequest, CreateEntryRequest__Output as _anchorage_admin_v1_CreateEntryRequest__Output } from '../../../anchorage/admin/v1/CreateEntryRequest.js';
import type { CreateFederationRelationshipRequest as _anchorage_admin_v1_CreateFederationRelationshipRequest, CreateFederationRelationshipRequest__Output as _anchorage_admin_v1_CreateFederationRelationshipRequest__Output } from '../../../anchorage/admin/v1/CreateFederationRelationshipRequest.js';
import type { CreateJoinTokenRequest as _anchorage_admin_v1_CreateJoinTokenRequest, CreateJoinTokenRequest__Output as _anchorage_admin_v1_CreateJoinTokenRequest__Output } from '../../../anchorage/admin/v1/CreateJoinTokenRequest.js';
import type { DeleteEntryRequest as _anchorage_admin_v1_DeleteEntryRequest, DeleteEntryRequest__Output as _anchorage_admin_v1_DeleteEntryRequest__Output } from '../../../anchorage/admin/v1/DeleteEntryRequest.js';
import type { DeleteFederatedBundleRequest as _anchorage_admin_v1_DeleteFederatedBundleRequest, DeleteFederatedBundleRequest__Output as _anchorage_admin_v1_DeleteFederatedBundleRequest__Output } from '../../../anchorage/admin/v1/DeleteFederatedBundleRequest.js';
import type { DeleteFederationRelationshipRequest as _anchorage_admin_v1_DeleteFederationRelationshipRequest, DeleteFederationRelationshipRequest__Output as _anchorage_admin_v1_DeleteFederationRelationshipRequest__Output } from '../../../anchorage/admin/v1/DeleteFederationRelationshipRequest.js';
import type { Entry as _anchorage_admin_v1_Entry, Entry__Output as _anchorage_admin_v1_Entry__Output } from '../../../anchorage/admin/v1/Entry.js';
import type { EvictAgentRequest as _anchorage_admin_v1_EvictAgentRequest, EvictAgentRequest__Output as _anchorage_admin_v1_EvictAgentRequest__Output } from '../../../anchorage/admin/v1/EvictAgentRequest.js';
import type { FederatedBundle as _anchorage_admin_v1_FederatedBundle, FederatedBundle__Output as _anchorage_admin_v1_FederatedBundle__Output } from '../../../anchorage/admin/v1/FederatedBundle.js';
import type { FederationRelationship as _anchorage_admin_v1_FederationRelationship, FederationRelationship__Output as _anchorage_admin_v1_FederationRelationship__Output } from '../../../anchorage/admin/v1/FederationRelationship.js';
import type { GetAgentRequest as _anchorage_admin_v1_GetAgentRequest, GetAgentRequest__Output as _anchorage_admin_v1_GetAgentRequest__Output } from '../../../anchorage/admin/v1/GetAgentRequest.js';
import type { GetBundleRequest as _anchorage_admin_v1_GetBundleRequest, GetBundleRequest__Output as _anchorage_admin_v1_GetBundleRequest__Output } from '../../../anchorage/admin/v1/GetBundleRequest.js';
import type { GetCAStatusRequest as _anchorage_admin_v1_GetCAStatusRequest, GetCAStatusRequest__Output as _anchorage_admin_v1_GetCAStatusRequest__Output } from '../../../anchorage/admin/v1/GetCAStatusRequest.js';
import type { GetEntryRequest as _anchorage_admin_v1_GetEntryRequest, GetEntryRequest__Output as _anchorage_admin_v1_GetEntryRequest__Output } from '../../../anchorage/admin/v1/GetEntryRequest.js';
import type { GetFederationRelationshipRequest as _anchorage_admin_v1_GetFederationRelationshipRequest, GetFederationRelationshipRequest__Output as _anchorage_admin_v1_GetFederationRelationshipRequest__Output } from '../../../anchorage/admin/v1/GetFederationRelationshipRequest.js';
import type { GetKeyProtectionRequest as _anchorage_admin_v1_GetKeyProtectionRequest, GetKeyProtectionRequest__Output as _anchorage_admin_v1_GetKeyProtectionRequest__Output } from '../../../anchorage/admin/v1/GetKeyProtectionRequest.js';
import type { JoinToken as _anchorage_admin_v1_JoinToken, JoinToken__Output as _anchorage_admin_v1_JoinToken__Output } from '../../../anchorage/admin/v1/JoinToken.js';
import type { KeyProtectionReport as _anchorage_admin_v1_KeyProtectionReport, KeyProtectionReport__Output as _anchorage_admin_v1_KeyProtectionReport__Output } from '../../../anchorage/admin/v1/KeyProtectionReport.js';
import type { ListAgentsRequest as _anchorage_admin_v1_ListAgentsRequest, ListAgentsRequest__Output as _anchorage_admin_v1_ListAgentsRequest__Output } from '../../../anchorage/admin/v1/ListAgentsRequest.js';
import type { ListAgentsResponse as _anchorage_admin_v1_ListAgentsResponse, ListAgentsResponse__Output as _anchorage_admin_v1_ListAgentsResponse__Output } from '../../../anchorage/admin/v1/ListAgentsResponse.js';
import type { ListAuditRecordsRequest as _anchorage_admin_v1_ListAuditRecordsRequest, ListAuditRecordsRequest__Output as _anchorage_admin_v1_ListAuditRecordsRequest__Output } from '../../../anchorage/admin/v1/ListAuditRecordsRequest.js';
import type { ListAuthoritiesRequest as _anchorage_admin_v1_ListAuthoritiesRequest, ListAuthoritiesRequest__Output as _anchorage_admin_v1_ListAuthoritiesRequest__Output } from '../../../anchorage/admin/v1/ListAuthoritiesRequest.js';
import type { ListAuthoritiesResponse as _anchorage_admin_v1_ListAuthoritiesResponse, ListAuthoritiesResponse__Output as _anchorage_admin_v1_ListAuthoritiesResponse__Output } from '../../../anchorage/admin/v1/ListAuthoritiesResponse.js';
import type { ListEntriesRequest as _anchorage_admin_v1_ListEntriesRequest, ListEntriesRequest__Output as _anchorage_admin_v1_ListEntriesRequest__Output } from '../../../anchorage/admin/v1/ListEntriesRequest.js';
import type { ListEntriesResponse as _anchorage_admin_v1_ListEntriesResponse, ListEntriesResponse__Output as _anchorage_admin_v1_ListEntriesResponse__Output } from '../../../anchorage/admin/v1/ListEntriesResponse.js';
import type { ListFederatedBundlesRequest as _anchorage_admin_v1_ListFederatedBundlesRequest, ListFederatedBundlesRequest__Output as _anchorage_admin_v1_ListFederatedBundlesRequest__Output } from '../../../anchorage/admin/v1/ListFederatedBundlesRequest.js';
import type { ListFederatedBundlesResponse as _anchorage_admin_v1_ListFederatedBundlesResponse, ListFederatedBundlesResponse__Output as _anchorage_admin_v1_ListFederatedBundlesResponse__Output } from '../../../anchorage/admin/v1/ListFederatedBundlesResponse.js';
import type { ListFederationRelationshipsRequest as _anchorage_admin_v1_ListFederationRelationshipsRequest, ListFederationRelationshipsRequest__Output as _anchorage_admin_v1_ListFederationRelationshipsRequest__Output } from '../../../anchorage/admin/v1/ListFederationRelationshipsRequest.js';
import type { ListFederationRelationshipsResponse as _anchorage_admin_v1_ListFederationRelationshipsResponse, ListFederationRelationshipsResponse__Output as _anchorage_admin_v1_ListFederationRelationshipsResponse__Output } from '../../../anchorage/admin/v1/ListFederationRelationshipsResponse.js';
import type { ListTrustAnchorsRequest as _anchorage_admin_v1_ListTrustAnchorsRequest, ListTrustAnchorsRequest__Output as _anchorage_admin_v1_ListTrustAnchorsRequest__Output } from '../../../anchorage/admin/v1/ListTrustAnchorsRequest.js';
import type { ListTrustAnchorsResponse as _anchorage_admin_v1_ListTrustAnchorsResponse, ListTrustAnchorsResponse__Output as _anchorage_admin_v1_ListTrustAnchorsResponse__Output } from '../../../anchorage/admin/v1/ListTrustAnchorsResponse.js';
import type { MintJWTSVIDRequest as _anchorage_admin_v1_MintJWTSVIDRequest, MintJWTSVIDRequest__Output as _anchorage_admin_v1_MintJWTSVIDRequest__Output } from '../../../anchorage/admin/v1/MintJWTSVIDRequest.js';
import type { MintJWTSVIDResponse as _anchorage_admin_v1_MintJWTSVIDResponse, MintJWTSVIDResponse__Output as _anchorage_admin_v1_MintJWTSVIDResponse__Output } from '../../../anchorage/admin/v1/MintJWTSVIDResponse.js';
import type { MintX509SVIDRequest as _anchorage_admin_v1_MintX509SVIDRequest, MintX509SVIDRequest__Output as _anchorage_admin_v1_MintX509SVIDRequest__Output } from '../../../anchorage/admin/v1/MintX509SVIDRequest.js';
import type { MintX509SVIDResponse as _anchorage_admin_v1_MintX509SVIDResponse, MintX509SVIDResponse__Output as _anchorage_admin_v1_MintX509SVIDResponse__Output } from '../../../anchorage/admin/v1/MintX509SVIDResponse.js';
import type { RefreshFederationRelationshipRequest as _anchorage_admin_v1_RefreshFederationRelationshipRequest, RefreshFederationRelationshipRequest__Output as _anchorage_admin_v1_RefreshFederationRelationshipRequest__Output } from '../../../anchorage/admin/v1/RefreshFederationRelationshipRequest.js';
import type { SetFederatedBundleRequest as _anchorage_admin_v1_SetFederatedBundleRequest, SetFederatedBundleRequest__Output as _anchorage_admin_v1_SetFederatedBundleRequest__Output } from '../../../anchorage/admin/v1/SetFederatedBundleRequest.js';
import type { UnbanAgentRequest as _anchorage_admin_v1_UnbanAgentRequest, UnbanAgentRequest__Output as _anchorage_admin_v1_UnbanAgentRequest__Output } from '../../../anchorage/admin/v1/UnbanAgentRequest.js';
import type { UpdateEntryRequest as _anchorage_admin_v1_UpdateEntryRequest, UpdateEntryRequest__Output as _anchorage_admin_v1_UpdateEntryRequest__Output } from '../../../anchorage/admin/v1/UpdateEntryRequest.js';
import type { UpdateFederationRelationshipRequest as _anchorage_admin_v1_UpdateFederationRelationshipRequest, UpdateFederationRelationshipRequest__Output as _anchorage_admin_v1_UpdateFederationRelationshipRequest__Output } from '../../../anchorage/admin/v1/UpdateFederationRelationshipRequest.js';
import type { VerifyAuditRequest as _anchorage_admin_v1_VerifyAuditRequest, VerifyAuditRequest__Output as _anchorage_admin_v1_VerifyAuditRequest__Output } from '../../../anchorage/admin/v1/VerifyAuditRequest.js';

export interface AdminClient extends grpc.Client {
  ActivateAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  ActivateAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  ActivateAuthority(argument: _anchorage_admin_v1_AuthorityRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  ActivateAuthority(argument: _anchorage_admin_v1_AuthorityRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  activateAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  activateAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  activateAuthority(argument: _anchorage_admin_v1_AuthorityRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  activateAuthority(argument: _anchorage_admin_v1_AuthorityRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  
  /**
   * Stops an agent ID from attesting again (and evicts it, if it has a record),
   * until UnbanAgent. The ID need not have attested yet.
   */
  BanAgent(argument: _anchorage_admin_v1_BanAgentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  BanAgent(argument: _anchorage_admin_v1_BanAgentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  BanAgent(argument: _anchorage_admin_v1_BanAgentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  BanAgent(argument: _anchorage_admin_v1_BanAgentRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  /**
   * Stops an agent ID from attesting again (and evicts it, if it has a record),
   * until UnbanAgent. The ID need not have attested yet.
   */
  banAgent(argument: _anchorage_admin_v1_BanAgentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  banAgent(argument: _anchorage_admin_v1_BanAgentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  banAgent(argument: _anchorage_admin_v1_BanAgentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  banAgent(argument: _anchorage_admin_v1_BanAgentRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  
  /**
   * Many entries in one datastore transaction, each with its own result
   * (after SPIRE's BatchCreateEntry): a bad or duplicate entry is refused
   * alone, the others are created.
   */
  BatchCreateEntry(argument: _anchorage_admin_v1_BatchCreateEntryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_BatchCreateEntryResponse__Output>): grpc.ClientUnaryCall;
  BatchCreateEntry(argument: _anchorage_admin_v1_BatchCreateEntryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_BatchCreateEntryResponse__Output>): grpc.ClientUnaryCall;
  BatchCreateEntry(argument: _anchorage_admin_v1_BatchCreateEntryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_BatchCreateEntryResponse__Output>): grpc.ClientUnaryCall;
  BatchCreateEntry(argument: _anchorage_admin_v1_BatchCreateEntryRequest, callback: grpc.requestCallback<_anchorage_admin_v1_BatchCreateEntryResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Many entries in one datastore transaction, each with its own result
   * (after SPIRE's BatchCreateEntry): a bad or duplicate entry is refused
   * alone, the others are created.
   */
  batchCreateEntry(argument: _anchorage_admin_v1_BatchCreateEntryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_BatchCreateEntryResponse__Output>): grpc.ClientUnaryCall;
  batchCreateEntry(argument: _anchorage_admin_v1_BatchCreateEntryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_BatchCreateEntryResponse__Output>): grpc.ClientUnaryCall;
  batchCreateEntry(argument: _anchorage_admin_v1_BatchCreateEntryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_BatchCreateEntryResponse__Output>): grpc.ClientUnaryCall;
  batchCreateEntry(argument: _anchorage_admin_v1_BatchCreateEntryRequest, callback: grpc.requestCallback<_anchorage_admin_v1_BatchCreateEntryResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Registration entries.
   */
  CreateEntry(argument: _anchorage_admin_v1_CreateEntryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  CreateEntry(argument: _anchorage_admin_v1_CreateEntryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  CreateEntry(argument: _anchorage_admin_v1_CreateEntryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  CreateEntry(argument: _anchorage_admin_v1_CreateEntryRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  /**
   * Registration entries.
   */
  createEntry(argument: _anchorage_admin_v1_CreateEntryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  createEntry(argument: _anchorage_admin_v1_CreateEntryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  createEntry(argument: _anchorage_admin_v1_CreateEntryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  createEntry(argument: _anchorage_admin_v1_CreateEntryRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  
  /**
   * Federation relationships: the server fetches each peer's bundle from its
   * bundle endpoint at the peer's refresh hint and keeps the last good one.
   */
  CreateFederationRelationship(argument: _anchorage_admin_v1_CreateFederationRelationshipRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  CreateFederationRelationship(argument: _anchorage_admin_v1_CreateFederationRelationshipRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  CreateFederationRelationship(argument: _anchorage_admin_v1_CreateFederationRelationshipRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  CreateFederationRelationship(argument: _anchorage_admin_v1_CreateFederationRelationshipRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  /**
   * Federation relationships: the server fetches each peer's bundle from its
   * bundle endpoint at the peer's refresh hint and keeps the last good one.
   */
  createFederationRelationship(argument: _anchorage_admin_v1_CreateFederationRelationshipRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  createFederationRelationship(argument: _anchorage_admin_v1_CreateFederationRelationshipRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  createFederationRelationship(argument: _anchorage_admin_v1_CreateFederationRelationshipRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  createFederationRelationship(argument: _anchorage_admin_v1_CreateFederationRelationshipRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  
  /**
   * Join tokens for node attestation.
   */
  CreateJoinToken(argument: _anchorage_admin_v1_CreateJoinTokenRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_JoinToken__Output>): grpc.ClientUnaryCall;
  CreateJoinToken(argument: _anchorage_admin_v1_CreateJoinTokenRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_JoinToken__Output>): grpc.ClientUnaryCall;
  CreateJoinToken(argument: _anchorage_admin_v1_CreateJoinTokenRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_JoinToken__Output>): grpc.ClientUnaryCall;
  CreateJoinToken(argument: _anchorage_admin_v1_CreateJoinTokenRequest, callback: grpc.requestCallback<_anchorage_admin_v1_JoinToken__Output>): grpc.ClientUnaryCall;
  /**
   * Join tokens for node attestation.
   */
  createJoinToken(argument: _anchorage_admin_v1_CreateJoinTokenRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_JoinToken__Output>): grpc.ClientUnaryCall;
  createJoinToken(argument: _anchorage_admin_v1_CreateJoinTokenRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_JoinToken__Output>): grpc.ClientUnaryCall;
  createJoinToken(argument: _anchorage_admin_v1_CreateJoinTokenRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_JoinToken__Output>): grpc.ClientUnaryCall;
  createJoinToken(argument: _anchorage_admin_v1_CreateJoinTokenRequest, callback: grpc.requestCallback<_anchorage_admin_v1_JoinToken__Output>): grpc.ClientUnaryCall;
  
  DeleteEntry(argument: _anchorage_admin_v1_DeleteEntryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  DeleteEntry(argument: _anchorage_admin_v1_DeleteEntryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  DeleteEntry(argument: _anchorage_admin_v1_DeleteEntryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  DeleteEntry(argument: _anchorage_admin_v1_DeleteEntryRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  deleteEntry(argument: _anchorage_admin_v1_DeleteEntryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  deleteEntry(argument: _anchorage_admin_v1_DeleteEntryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  deleteEntry(argument: _anchorage_admin_v1_DeleteEntryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  deleteEntry(argument: _anchorage_admin_v1_DeleteEntryRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  
  DeleteFederatedBundle(argument: _anchorage_admin_v1_DeleteFederatedBundleRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  DeleteFederatedBundle(argument: _anchorage_admin_v1_DeleteFederatedBundleRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  DeleteFederatedBundle(argument: _anchorage_admin_v1_DeleteFederatedBundleRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  DeleteFederatedBundle(argument: _anchorage_admin_v1_DeleteFederatedBundleRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  deleteFederatedBundle(argument: _anchorage_admin_v1_DeleteFederatedBundleRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  deleteFederatedBundle(argument: _anchorage_admin_v1_DeleteFederatedBundleRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  deleteFederatedBundle(argument: _anchorage_admin_v1_DeleteFederatedBundleRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  deleteFederatedBundle(argument: _anchorage_admin_v1_DeleteFederatedBundleRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  
  /**
   * Deletes the relationship and the peer's bundle (agents drop it at once).
   */
  DeleteFederationRelationship(argument: _anchorage_admin_v1_DeleteFederationRelationshipRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  DeleteFederationRelationship(argument: _anchorage_admin_v1_DeleteFederationRelationshipRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  DeleteFederationRelationship(argument: _anchorage_admin_v1_DeleteFederationRelationshipRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  DeleteFederationRelationship(argument: _anchorage_admin_v1_DeleteFederationRelationshipRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  /**
   * Deletes the relationship and the peer's bundle (agents drop it at once).
   */
  deleteFederationRelationship(argument: _anchorage_admin_v1_DeleteFederationRelationshipRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  deleteFederationRelationship(argument: _anchorage_admin_v1_DeleteFederationRelationshipRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  deleteFederationRelationship(argument: _anchorage_admin_v1_DeleteFederationRelationshipRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  deleteFederationRelationship(argument: _anchorage_admin_v1_DeleteFederationRelationshipRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  
  /**
   * Revokes an agent's access at once: its calls fail and its streams end.
   */
  EvictAgent(argument: _anchorage_admin_v1_EvictAgentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  EvictAgent(argument: _anchorage_admin_v1_EvictAgentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  EvictAgent(argument: _anchorage_admin_v1_EvictAgentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  EvictAgent(argument: _anchorage_admin_v1_EvictAgentRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  /**
   * Revokes an agent's access at once: its calls fail and its streams end.
   */
  evictAgent(argument: _anchorage_admin_v1_EvictAgentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  evictAgent(argument: _anchorage_admin_v1_EvictAgentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  evictAgent(argument: _anchorage_admin_v1_EvictAgentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  evictAgent(argument: _anchorage_admin_v1_EvictAgentRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  
  GetAgent(argument: _anchorage_admin_v1_GetAgentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  GetAgent(argument: _anchorage_admin_v1_GetAgentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  GetAgent(argument: _anchorage_admin_v1_GetAgentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  GetAgent(argument: _anchorage_admin_v1_GetAgentRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  getAgent(argument: _anchorage_admin_v1_GetAgentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  getAgent(argument: _anchorage_admin_v1_GetAgentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  getAgent(argument: _anchorage_admin_v1_GetAgentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  getAgent(argument: _anchorage_admin_v1_GetAgentRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Agent__Output>): grpc.ClientUnaryCall;
  
  /**
   * The trust domain's own bundle.
   */
  GetBundle(argument: _anchorage_admin_v1_GetBundleRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Bundle__Output>): grpc.ClientUnaryCall;
  GetBundle(argument: _anchorage_admin_v1_GetBundleRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Bundle__Output>): grpc.ClientUnaryCall;
  GetBundle(argument: _anchorage_admin_v1_GetBundleRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Bundle__Output>): grpc.ClientUnaryCall;
  GetBundle(argument: _anchorage_admin_v1_GetBundleRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Bundle__Output>): grpc.ClientUnaryCall;
  /**
   * The trust domain's own bundle.
   */
  getBundle(argument: _anchorage_admin_v1_GetBundleRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Bundle__Output>): grpc.ClientUnaryCall;
  getBundle(argument: _anchorage_admin_v1_GetBundleRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Bundle__Output>): grpc.ClientUnaryCall;
  getBundle(argument: _anchorage_admin_v1_GetBundleRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Bundle__Output>): grpc.ClientUnaryCall;
  getBundle(argument: _anchorage_admin_v1_GetBundleRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Bundle__Output>): grpc.ClientUnaryCall;
  
  /**
   * The CA journal: root, intermediates and JWT keys with their state.
   */
  GetCAStatus(argument: _anchorage_admin_v1_GetCAStatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_CAStatus__Output>): grpc.ClientUnaryCall;
  GetCAStatus(argument: _anchorage_admin_v1_GetCAStatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_CAStatus__Output>): grpc.ClientUnaryCall;
  GetCAStatus(argument: _anchorage_admin_v1_GetCAStatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_CAStatus__Output>): grpc.ClientUnaryCall;
  GetCAStatus(argument: _anchorage_admin_v1_GetCAStatusRequest, callback: grpc.requestCallback<_anchorage_admin_v1_CAStatus__Output>): grpc.ClientUnaryCall;
  /**
   * The CA journal: root, intermediates and JWT keys with their state.
   */
  getCaStatus(argument: _anchorage_admin_v1_GetCAStatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_CAStatus__Output>): grpc.ClientUnaryCall;
  getCaStatus(argument: _anchorage_admin_v1_GetCAStatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_CAStatus__Output>): grpc.ClientUnaryCall;
  getCaStatus(argument: _anchorage_admin_v1_GetCAStatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_CAStatus__Output>): grpc.ClientUnaryCall;
  getCaStatus(argument: _anchorage_admin_v1_GetCAStatusRequest, callback: grpc.requestCallback<_anchorage_admin_v1_CAStatus__Output>): grpc.ClientUnaryCall;
  
  GetEntry(argument: _anchorage_admin_v1_GetEntryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  GetEntry(argument: _anchorage_admin_v1_GetEntryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  GetEntry(argument: _anchorage_admin_v1_GetEntryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  GetEntry(argument: _anchorage_admin_v1_GetEntryRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  getEntry(argument: _anchorage_admin_v1_GetEntryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  getEntry(argument: _anchorage_admin_v1_GetEntryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  getEntry(argument: _anchorage_admin_v1_GetEntryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  getEntry(argument: _anchorage_admin_v1_GetEntryRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  
  GetFederationRelationship(argument: _anchorage_admin_v1_GetFederationRelationshipRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  GetFederationRelationship(argument: _anchorage_admin_v1_GetFederationRelationshipRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  GetFederationRelationship(argument: _anchorage_admin_v1_GetFederationRelationshipRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  GetFederationRelationship(argument: _anchorage_admin_v1_GetFederationRelationshipRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  getFederationRelationship(argument: _anchorage_admin_v1_GetFederationRelationshipRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  getFederationRelationship(argument: _anchorage_admin_v1_GetFederationRelationshipRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  getFederationRelationship(argument: _anchorage_admin_v1_GetFederationRelationshipRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  getFederationRelationship(argument: _anchorage_admin_v1_GetFederationRelationshipRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  
  /**
   * How the HSM protects each CA key, read from the token (CKA_SENSITIVE,
   * CKA_EXTRACTABLE, ...): for `anchorage check`. UNAVAILABLE if the token
   * cannot be reached.
   */
  GetKeyProtection(argument: _anchorage_admin_v1_GetKeyProtectionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_KeyProtectionReport__Output>): grpc.ClientUnaryCall;
  GetKeyProtection(argument: _anchorage_admin_v1_GetKeyProtectionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_KeyProtectionReport__Output>): grpc.ClientUnaryCall;
  GetKeyProtection(argument: _anchorage_admin_v1_GetKeyProtectionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_KeyProtectionReport__Output>): grpc.ClientUnaryCall;
  GetKeyProtection(argument: _anchorage_admin_v1_GetKeyProtectionRequest, callback: grpc.requestCallback<_anchorage_admin_v1_KeyProtectionReport__Output>): grpc.ClientUnaryCall;
  /**
   * How the HSM protects each CA key, read from the token (CKA_SENSITIVE,
   * CKA_EXTRACTABLE, ...): for `anchorage check`. UNAVAILABLE if the token
   * cannot be reached.
   */
  getKeyProtection(argument: _anchorage_admin_v1_GetKeyProtectionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_KeyProtectionReport__Output>): grpc.ClientUnaryCall;
  getKeyProtection(argument: _anchorage_admin_v1_GetKeyProtectionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_KeyProtectionReport__Output>): grpc.ClientUnaryCall;
  getKeyProtection(argument: _anchorage_admin_v1_GetKeyProtectionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_KeyProtectionReport__Output>): grpc.ClientUnaryCall;
  getKeyProtection(argument: _anchorage_admin_v1_GetKeyProtectionRequest, callback: grpc.requestCallback<_anchorage_admin_v1_KeyProtectionReport__Output>): grpc.ClientUnaryCall;
  
  /**
   * Attested node agents.
   */
  ListAgents(argument: _anchorage_admin_v1_ListAgentsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListAgentsResponse__Output>): grpc.ClientUnaryCall;
  ListAgents(argument: _anchorage_admin_v1_ListAgentsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListAgentsResponse__Output>): grpc.ClientUnaryCall;
  ListAgents(argument: _anchorage_admin_v1_ListAgentsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListAgentsResponse__Output>): grpc.ClientUnaryCall;
  ListAgents(argument: _anchorage_admin_v1_ListAgentsRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListAgentsResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Attested node agents.
   */
  listAgents(argument: _anchorage_admin_v1_ListAgentsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListAgentsResponse__Output>): grpc.ClientUnaryCall;
  listAgents(argument: _anchorage_admin_v1_ListAgentsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListAgentsResponse__Output>): grpc.ClientUnaryCall;
  listAgents(argument: _anchorage_admin_v1_ListAgentsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListAgentsResponse__Output>): grpc.ClientUnaryCall;
  listAgents(argument: _anchorage_admin_v1_ListAgentsRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListAgentsResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * The audit log (anchorage audit list|verify; ca/audit/): every admin call,
   * SVID issued, attestation, renewal, eviction, federation and authority
   * change, hash-chained with HSM-signed checkpoints. Streams the records
   * matching the request in seq order; with follow, then each new one as it
   * is committed, until the caller cancels or the server stops.
   */
  ListAuditRecords(argument: _anchorage_admin_v1_ListAuditRecordsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_anchorage_admin_v1_AuditRecord__Output>;
  ListAuditRecords(argument: _anchorage_admin_v1_ListAuditRecordsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_anchorage_admin_v1_AuditRecord__Output>;
  /**
   * The audit log (anchorage audit list|verify; ca/audit/): every admin call,
   * SVID issued, attestation, renewal, eviction, federation and authority
   * change, hash-chained with HSM-signed checkpoints. Streams the records
   * matching the request in seq order; with follow, then each new one as it
   * is committed, until the caller cancels or the server stops.
   */
  listAuditRecords(argument: _anchorage_admin_v1_ListAuditRecordsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_anchorage_admin_v1_AuditRecord__Output>;
  listAuditRecords(argument: _anchorage_admin_v1_ListAuditRecordsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_anchorage_admin_v1_AuditRecord__Output>;
  
  /**
   * Authority lifecycle (anchorage authority x509|jwt|root ...): the CA's
   * roots, intermediates and JWT keys, prepared, activated, tainted and
   * revoked by an operator ahead of the schedule.
   */
  ListAuthorities(argument: _anchorage_admin_v1_ListAuthoritiesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListAuthoritiesResponse__Output>): grpc.ClientUnaryCall;
  ListAuthorities(argument: _anchorage_admin_v1_ListAuthoritiesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListAuthoritiesResponse__Output>): grpc.ClientUnaryCall;
  ListAuthorities(argument: _anchorage_admin_v1_ListAuthoritiesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListAuthoritiesResponse__Output>): grpc.ClientUnaryCall;
  ListAuthorities(argument: _anchorage_admin_v1_ListAuthoritiesRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListAuthoritiesResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Authority lifecycle (anchorage authority x509|jwt|root ...): the CA's
   * roots, intermediates and JWT keys, prepared, activated, tainted and
   * revoked by an operator ahead of the schedule.
   */
  listAuthorities(argument: _anchorage_admin_v1_ListAuthoritiesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListAuthoritiesResponse__Output>): grpc.ClientUnaryCall;
  listAuthorities(argument: _anchorage_admin_v1_ListAuthoritiesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListAuthoritiesResponse__Output>): grpc.ClientUnaryCall;
  listAuthorities(argument: _anchorage_admin_v1_ListAuthoritiesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListAuthoritiesResponse__Output>): grpc.ClientUnaryCall;
  listAuthorities(argument: _anchorage_admin_v1_ListAuthoritiesRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListAuthoritiesResponse__Output>): grpc.ClientUnaryCall;
  
  ListEntries(argument: _anchorage_admin_v1_ListEntriesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListEntriesResponse__Output>): grpc.ClientUnaryCall;
  ListEntries(argument: _anchorage_admin_v1_ListEntriesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListEntriesResponse__Output>): grpc.ClientUnaryCall;
  ListEntries(argument: _anchorage_admin_v1_ListEntriesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListEntriesResponse__Output>): grpc.ClientUnaryCall;
  ListEntries(argument: _anchorage_admin_v1_ListEntriesRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListEntriesResponse__Output>): grpc.ClientUnaryCall;
  listEntries(argument: _anchorage_admin_v1_ListEntriesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListEntriesResponse__Output>): grpc.ClientUnaryCall;
  listEntries(argument: _anchorage_admin_v1_ListEntriesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListEntriesResponse__Output>): grpc.ClientUnaryCall;
  listEntries(argument: _anchorage_admin_v1_ListEntriesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListEntriesResponse__Output>): grpc.ClientUnaryCall;
  listEntries(argument: _anchorage_admin_v1_ListEntriesRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListEntriesResponse__Output>): grpc.ClientUnaryCall;
  
  ListFederatedBundles(argument: _anchorage_admin_v1_ListFederatedBundlesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederatedBundlesResponse__Output>): grpc.ClientUnaryCall;
  ListFederatedBundles(argument: _anchorage_admin_v1_ListFederatedBundlesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederatedBundlesResponse__Output>): grpc.ClientUnaryCall;
  ListFederatedBundles(argument: _anchorage_admin_v1_ListFederatedBundlesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederatedBundlesResponse__Output>): grpc.ClientUnaryCall;
  ListFederatedBundles(argument: _anchorage_admin_v1_ListFederatedBundlesRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederatedBundlesResponse__Output>): grpc.ClientUnaryCall;
  listFederatedBundles(argument: _anchorage_admin_v1_ListFederatedBundlesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederatedBundlesResponse__Output>): grpc.ClientUnaryCall;
  listFederatedBundles(argument: _anchorage_admin_v1_ListFederatedBundlesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederatedBundlesResponse__Output>): grpc.ClientUnaryCall;
  listFederatedBundles(argument: _anchorage_admin_v1_ListFederatedBundlesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederatedBundlesResponse__Output>): grpc.ClientUnaryCall;
  listFederatedBundles(argument: _anchorage_admin_v1_ListFederatedBundlesRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederatedBundlesResponse__Output>): grpc.ClientUnaryCall;
  
  ListFederationRelationships(argument: _anchorage_admin_v1_ListFederationRelationshipsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederationRelationshipsResponse__Output>): grpc.ClientUnaryCall;
  ListFederationRelationships(argument: _anchorage_admin_v1_ListFederationRelationshipsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederationRelationshipsResponse__Output>): grpc.ClientUnaryCall;
  ListFederationRelationships(argument: _anchorage_admin_v1_ListFederationRelationshipsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederationRelationshipsResponse__Output>): grpc.ClientUnaryCall;
  ListFederationRelationships(argument: _anchorage_admin_v1_ListFederationRelationshipsRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederationRelationshipsResponse__Output>): grpc.ClientUnaryCall;
  listFederationRelationships(argument: _anchorage_admin_v1_ListFederationRelationshipsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederationRelationshipsResponse__Output>): grpc.ClientUnaryCall;
  listFederationRelationships(argument: _anchorage_admin_v1_ListFederationRelationshipsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederationRelationshipsResponse__Output>): grpc.ClientUnaryCall;
  listFederationRelationships(argument: _anchorage_admin_v1_ListFederationRelationshipsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederationRelationshipsResponse__Output>): grpc.ClientUnaryCall;
  listFederationRelationships(argument: _anchorage_admin_v1_ListFederationRelationshipsRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListFederationRelationshipsResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Every trust anchor the trust domain relies on: its own root(s),
   * intermediates and JWT keys, and each federated trust domain's X.509
   * authorities and JWT keys, with where each comes from, when it was first
   * seen and how many agents hold it.
   */
  ListTrustAnchors(argument: _anchorage_admin_v1_ListTrustAnchorsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListTrustAnchorsResponse__Output>): grpc.ClientUnaryCall;
  ListTrustAnchors(argument: _anchorage_admin_v1_ListTrustAnchorsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListTrustAnchorsResponse__Output>): grpc.ClientUnaryCall;
  ListTrustAnchors(argument: _anchorage_admin_v1_ListTrustAnchorsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListTrustAnchorsResponse__Output>): grpc.ClientUnaryCall;
  ListTrustAnchors(argument: _anchorage_admin_v1_ListTrustAnchorsRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListTrustAnchorsResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Every trust anchor the trust domain relies on: its own root(s),
   * intermediates and JWT keys, and each federated trust domain's X.509
   * authorities and JWT keys, with where each comes from, when it was first
   * seen and how many agents hold it.
   */
  listTrustAnchors(argument: _anchorage_admin_v1_ListTrustAnchorsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListTrustAnchorsResponse__Output>): grpc.ClientUnaryCall;
  listTrustAnchors(argument: _anchorage_admin_v1_ListTrustAnchorsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_ListTrustAnchorsResponse__Output>): grpc.ClientUnaryCall;
  listTrustAnchors(argument: _anchorage_admin_v1_ListTrustAnchorsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_ListTrustAnchorsResponse__Output>): grpc.ClientUnaryCall;
  listTrustAnchors(argument: _anchorage_admin_v1_ListTrustAnchorsRequest, callback: grpc.requestCallback<_anchorage_admin_v1_ListTrustAnchorsResponse__Output>): grpc.ClientUnaryCall;
  
  MintJWTSVID(argument: _anchorage_admin_v1_MintJWTSVIDRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_MintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  MintJWTSVID(argument: _anchorage_admin_v1_MintJWTSVIDRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_MintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  MintJWTSVID(argument: _anchorage_admin_v1_MintJWTSVIDRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_MintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  MintJWTSVID(argument: _anchorage_admin_v1_MintJWTSVIDRequest, callback: grpc.requestCallback<_anchorage_admin_v1_MintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  mintJwtsvid(argument: _anchorage_admin_v1_MintJWTSVIDRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_MintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  mintJwtsvid(argument: _anchorage_admin_v1_MintJWTSVIDRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_MintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  mintJwtsvid(argument: _anchorage_admin_v1_MintJWTSVIDRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_MintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  mintJwtsvid(argument: _anchorage_admin_v1_MintJWTSVIDRequest, callback: grpc.requestCallback<_anchorage_admin_v1_MintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Direct minting for operators (the key stays with the caller: X.509 takes a CSR).
   */
  MintX509SVID(argument: _anchorage_admin_v1_MintX509SVIDRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_MintX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  MintX509SVID(argument: _anchorage_admin_v1_MintX509SVIDRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_MintX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  MintX509SVID(argument: _anchorage_admin_v1_MintX509SVIDRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_MintX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  MintX509SVID(argument: _anchorage_admin_v1_MintX509SVIDRequest, callback: grpc.requestCallback<_anchorage_admin_v1_MintX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Direct minting for operators (the key stays with the caller: X.509 takes a CSR).
   */
  mintX509Svid(argument: _anchorage_admin_v1_MintX509SVIDRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_MintX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  mintX509Svid(argument: _anchorage_admin_v1_MintX509SVIDRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_MintX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  mintX509Svid(argument: _anchorage_admin_v1_MintX509SVIDRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_MintX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  mintX509Svid(argument: _anchorage_admin_v1_MintX509SVIDRequest, callback: grpc.requestCallback<_anchorage_admin_v1_MintX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  
  PrepareAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  PrepareAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  PrepareAuthority(argument: _anchorage_admin_v1_AuthorityRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  PrepareAuthority(argument: _anchorage_admin_v1_AuthorityRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  prepareAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  prepareAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  prepareAuthority(argument: _anchorage_admin_v1_AuthorityRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  prepareAuthority(argument: _anchorage_admin_v1_AuthorityRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  
  /**
   * Fetches the peer's bundle now and returns the relationship with the outcome.
   */
  RefreshFederationRelationship(argument: _anchorage_admin_v1_RefreshFederationRelationshipRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  RefreshFederationRelationship(argument: _anchorage_admin_v1_RefreshFederationRelationshipRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  RefreshFederationRelationship(argument: _anchorage_admin_v1_RefreshFederationRelationshipRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  RefreshFederationRelationship(argument: _anchorage_admin_v1_RefreshFederationRelationshipRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  /**
   * Fetches the peer's bundle now and returns the relationship with the outcome.
   */
  refreshFederationRelationship(argument: _anchorage_admin_v1_RefreshFederationRelationshipRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  refreshFederationRelationship(argument: _anchorage_admin_v1_RefreshFederationRelationshipRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  refreshFederationRelationship(argument: _anchorage_admin_v1_RefreshFederationRelationshipRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  refreshFederationRelationship(argument: _anchorage_admin_v1_RefreshFederationRelationshipRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  
  RevokeAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  RevokeAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  RevokeAuthority(argument: _anchorage_admin_v1_AuthorityRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  RevokeAuthority(argument: _anchorage_admin_v1_AuthorityRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  revokeAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  revokeAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  revokeAuthority(argument: _anchorage_admin_v1_AuthorityRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  revokeAuthority(argument: _anchorage_admin_v1_AuthorityRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  
  /**
   * Bundles of federated trust domains. Set by hand (static federation, for
   * peers without a reachable bundle endpoint); agents get them at once and
   * hand them to workloads whose entries federate with that trust domain.
   */
  SetFederatedBundle(argument: _anchorage_admin_v1_SetFederatedBundleRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  SetFederatedBundle(argument: _anchorage_admin_v1_SetFederatedBundleRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  SetFederatedBundle(argument: _anchorage_admin_v1_SetFederatedBundleRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  SetFederatedBundle(argument: _anchorage_admin_v1_SetFederatedBundleRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  /**
   * Bundles of federated trust domains. Set by hand (static federation, for
   * peers without a reachable bundle endpoint); agents get them at once and
   * hand them to workloads whose entries federate with that trust domain.
   */
  setFederatedBundle(argument: _anchorage_admin_v1_SetFederatedBundleRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  setFederatedBundle(argument: _anchorage_admin_v1_SetFederatedBundleRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  setFederatedBundle(argument: _anchorage_admin_v1_SetFederatedBundleRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  setFederatedBundle(argument: _anchorage_admin_v1_SetFederatedBundleRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederatedBundle__Output>): grpc.ClientUnaryCall;
  
  TaintAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  TaintAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  TaintAuthority(argument: _anchorage_admin_v1_AuthorityRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  TaintAuthority(argument: _anchorage_admin_v1_AuthorityRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  taintAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  taintAuthority(argument: _anchorage_admin_v1_AuthorityRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  taintAuthority(argument: _anchorage_admin_v1_AuthorityRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  taintAuthority(argument: _anchorage_admin_v1_AuthorityRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AuthorityChange__Output>): grpc.ClientUnaryCall;
  
  UnbanAgent(argument: _anchorage_admin_v1_UnbanAgentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  UnbanAgent(argument: _anchorage_admin_v1_UnbanAgentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  UnbanAgent(argument: _anchorage_admin_v1_UnbanAgentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  UnbanAgent(argument: _anchorage_admin_v1_UnbanAgentRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  unbanAgent(argument: _anchorage_admin_v1_UnbanAgentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  unbanAgent(argument: _anchorage_admin_v1_UnbanAgentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  unbanAgent(argument: _anchorage_admin_v1_UnbanAgentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  unbanAgent(argument: _anchorage_admin_v1_UnbanAgentRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AgentBan__Output>): grpc.ClientUnaryCall;
  
  UpdateEntry(argument: _anchorage_admin_v1_UpdateEntryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  UpdateEntry(argument: _anchorage_admin_v1_UpdateEntryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  UpdateEntry(argument: _anchorage_admin_v1_UpdateEntryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  UpdateEntry(argument: _anchorage_admin_v1_UpdateEntryRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  updateEntry(argument: _anchorage_admin_v1_UpdateEntryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  updateEntry(argument: _anchorage_admin_v1_UpdateEntryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  updateEntry(argument: _anchorage_admin_v1_UpdateEntryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  updateEntry(argument: _anchorage_admin_v1_UpdateEntryRequest, callback: grpc.requestCallback<_anchorage_admin_v1_Entry__Output>): grpc.ClientUnaryCall;
  
  UpdateFederationRelationship(argument: _anchorage_admin_v1_UpdateFederationRelationshipRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  UpdateFederationRelationship(argument: _anchorage_admin_v1_UpdateFederationRelationshipRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  UpdateFederationRelationship(argument: _anchorage_admin_v1_UpdateFederationRelationshipRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  UpdateFederationRelationship(argument: _anchorage_admin_v1_UpdateFederationRelationshipRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  updateFederationRelationship(argument: _anchorage_admin_v1_UpdateFederationRelationshipRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  updateFederationRelationship(argument: _anchorage_admin_v1_UpdateFederationRelationshipRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  updateFederationRelationship(argument: _anchorage_admin_v1_UpdateFederationRelationshipRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  updateFederationRelationship(argument: _anchorage_admin_v1_UpdateFederationRelationshipRequest, callback: grpc.requestCallback<_anchorage_admin_v1_FederationRelationship__Output>): grpc.ClientUnaryCall;
  
  /**
   * Checks the whole chain, its checkpoints and its head (see the README).
   */
  VerifyAudit(argument: _anchorage_admin_v1_VerifyAuditRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuditVerification__Output>): grpc.ClientUnaryCall;
  VerifyAudit(argument: _anchorage_admin_v1_VerifyAuditRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AuditVerification__Output>): grpc.ClientUnaryCall;
  VerifyAudit(argument: _anchorage_admin_v1_VerifyAuditRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuditVerification__Output>): grpc.ClientUnaryCall;
  VerifyAudit(argument: _anchorage_admin_v1_VerifyAuditRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AuditVerification__Output>): grpc.ClientUnaryCall;
  /**
   * Checks the whole chain, its checkpoints and its head (see the README).
   */
  verifyAudit(argument: _anchorage_admin_v1_VerifyAuditRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuditVerification__Output>): grpc.ClientUnaryCall;
  verifyAudit(argument: _anchorage_admin_v1_VerifyAuditRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_admin_v1_AuditVerification__Output>): grpc.ClientUnaryCall;
  verifyAudit(argument: _anchorage_admin_v1_VerifyAuditRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_admin_v1_AuditVerification__Output>): grpc.ClientUnaryCall;
  verifyAudit(argument: _anchorage_admin_v1_VerifyAuditRequest, callback: grpc.requestCallback<_anchorage_admin_v1_AuditVerification__Output>): grpc.ClientUnaryCall;
  
}

export interface AdminHandlers extends grpc.UntypedServiceImplementation {
  ActivateAuthority: grpc.handleUnaryCall<_anchorage_admin_v1_AuthorityRequest__Output, _anchorage_admin_v1_AuthorityChange>;
  
  /**
   * Stops an agent ID from attesting again (and evicts it, if it has a record),
   * until UnbanAgent. The ID need not have attested yet.
   */
  BanAgent: grpc.handleUnaryCall<_anchorage_admin_v1_BanAgentRequest__Output, _anchorage_admin_v1_AgentBan>;
  
  /**
   * Many entries in one datastore transaction, each with its own result
   * (after SPIRE's BatchCreateEntry): a bad or duplicate entry is refused
   * alone, the others are created.
   */
  BatchCreateEntry: grpc.handleUnaryCall<_anchorage_admin_v1_BatchCreateEntryRequest__Output, _anchorage_admin_v1_BatchCreateEntryResponse>;
  
  /**
   * Registration entries.
   */
  CreateEntry: grpc.handleUnaryCall<_anchorage_admin_v1_CreateEntryRequest__Output, _anchorage_admin_v1_Entry>;
  
  /**
   * Federation relationships: the server fetches each peer's bundle from its
   * bundle endpoint at the peer's refresh hint and keeps the last good one.
   */
  CreateFederationRelationship: grpc.handleUnaryCall<_anchorage_admin_v1_CreateFederationRelationshipRequest__Output, _anchorage_admin_v1_FederationRelationship>;
  
  /**
   * Join tokens for node attestation.
   */
  CreateJoinToken: grpc.handleUnaryCall<_anchorage_admin_v1_CreateJoinTokenRequest__Output, _anchorage_admin_v1_JoinToken>;
  
  DeleteEntry: grpc.handleUnaryCall<_anchorage_admin_v1_DeleteEntryRequest__Output, _anchorage_admin_v1_Entry>;
  
  DeleteFederatedBundle: grpc.handleUnaryCall<_anchorage_admin_v1_DeleteFederatedBundleRequest__Output, _anchorage_admin_v1_FederatedBundle>;
  
  /**
   * Deletes the relationship and the peer's bundle (agents drop it at once).
   */
  DeleteFederationRelationship: grpc.handleUnaryCall<_anchorage_admin_v1_DeleteFederationRelationshipRequest__Output, _anchorage_admin_v1_FederationRelationship>;
  
  /**
   * Revokes an agent's access at once: its calls fail and its streams end.
   */
  EvictAgent: grpc.handleUnaryCall<_anchorage_admin_v1_EvictAgentRequest__Output, _anchorage_admin_v1_Agent>;
  
  GetAgent: grpc.handleUnaryCall<_anchorage_admin_v1_GetAgentRequest__Output, _anchorage_admin_v1_Agent>;
  
  /**
   * The trust domain's own bundle.
   */
  GetBundle: grpc.handleUnaryCall<_anchorage_admin_v1_GetBundleRequest__Output, _anchorage_admin_v1_Bundle>;
  
  /**
   * The CA journal: root, intermediates and JWT keys with their state.
   */
  GetCAStatus: grpc.handleUnaryCall<_anchorage_admin_v1_GetCAStatusRequest__Output, _anchorage_admin_v1_CAStatus>;
  
  GetEntry: grpc.handleUnaryCall<_anchorage_admin_v1_GetEntryRequest__Output, _anchorage_admin_v1_Entry>;
  
  GetFederationRelationship: grpc.handleUnaryCall<_anchorage_admin_v1_GetFederationRelationshipRequest__Output, _anchorage_admin_v1_FederationRelationship>;
  
  /**
   * How the HSM protects each CA key, read from the token (CKA_SENSITIVE,
   * CKA_EXTRACTABLE, ...): for `anchorage check`. UNAVAILABLE if the token
   * cannot be reached.
   */
  GetKeyProtection: grpc.handleUnaryCall<_anchorage_admin_v1_GetKeyProtectionRequest__Output, _anchorage_admin_v1_KeyProtectionReport>;
  
  /**
   * Attested node agents.
   */
  ListAgents: grpc.handleUnaryCall<_anchorage_admin_v1_ListAgentsRequest__Output, _anchorage_admin_v1_ListAgentsResponse>;
  
  /**
   * The audit log (anchorage audit list|verify; ca/audit/): every admin call,
   * SVID issued, attestation, renewal, eviction, federation and authority
   * change, hash-chained with HSM-signed checkpoints. Streams the records
   * matching the request in seq order; with follow, then each new one as it
   * is committed, until the caller cancels or the server stops.
   */
  ListAuditRecords: grpc.handleServerStreamingCall<_anchorage_admin_v1_ListAuditRecordsRequest__Output, _anchorage_admin_v1_AuditRecord>;
  
  /**
   * Authority lifecycle (anchorage authority x509|jwt|root ...): the CA's
   * roots, intermediates and JWT keys, prepared, activated, tainted and
   * revoked by an operator ahead of the schedule.
   */
  ListAuthorities: grpc.handleUnaryCall<_anchorage_admin_v1_ListAuthoritiesRequest__Output, _anchorage_admin_v1_ListAuthoritiesResponse>;
  
  ListEntries: grpc.handleUnaryCall<_anchorage_admin_v1_ListEntriesRequest__Output, _anchorage_admin_v1_ListEntriesResponse>;
  
  ListFederatedBundles: grpc.handleUnaryCall<_anchorage_admin_v1_ListFederatedBundlesRequest__Output, _anchorage_admin_v1_ListFederatedBundlesResponse>;
  
  ListFederationRelationships: grpc.handleUnaryCall<_anchorage_admin_v1_ListFederationRelationshipsRequest__Output, _anchorage_admin_v1_ListFederationRelationshipsResponse>;
  
  /**
   * Every trust anchor the trust domain relies on: its own root(s),
   * intermediates and JWT keys, and each federated trust domain's X.509
   * authorities and JWT keys, with where each comes from, when it was first
   * seen and how many agents hold it.
   */
  ListTrustAnchors: grpc.handleUnaryCall<_anchorage_admin_v1_ListTrustAnchorsRequest__Output, _anchorage_admin_v1_ListTrustAnchorsResponse>;
  
  MintJWTSVID: grpc.handleUnaryCall<_anchorage_admin_v1_MintJWTSVIDRequest__Output, _anchorage_admin_v1_MintJWTSVIDResponse>;
  
  /**
   * Direct minting for operators (the key stays with the caller: X.509 takes a CSR).
   */
  MintX509SVID: grpc.handleUnaryCall<_anchorage_admin_v1_MintX509SVIDRequest__Output, _anchorage_admin_v1_MintX509SVIDResponse>;
  
  PrepareAuthority: grpc.handleUnaryCall<_anchorage_admin_v1_AuthorityRequest__Output, _anchorage_admin_v1_AuthorityChange>;
  
  /**
   * Fetches the peer's bundle now and returns the relationship with the outcome.
   */
  RefreshFederationRelationship: grpc.handleUnaryCall<_anchorage_admin_v1_RefreshFederationRelationshipRequest__Output, _anchorage_admin_v1_FederationRelationship>;
  
  RevokeAuthority: grpc.handleUnaryCall<_anchorage_admin_v1_AuthorityRequest__Output, _anchorage_admin_v1_AuthorityChange>;
  
  /**
   * Bundles of federated trust domains. Set by hand (static federation, for
   * peers without a reachable bundle endpoint); agents get them at once and
   * hand them to workloads whose entries federate with that trust domain.
   */
  SetFederatedBundle: grpc.handleUnaryCall<_anchorage_admin_v1_SetFederatedBundleRequest__Output, _anchorage_admin_v1_FederatedBundle>;
  
  TaintAuthority: grpc.handleUnaryCall<_anchorage_admin_v1_AuthorityRequest__Output, _anchorage_admin_v1_AuthorityChange>;
  
  UnbanAgent: grpc.handleUnaryCall<_anchorage_admin_v1_UnbanAgentRequest__Output, _anchorage_admin_v1_AgentBan>;
  
  UpdateEntry: grpc.handleUnaryCall<_anchorage_admin_v1_UpdateEntryRequest__Output, _anchorage_admin_v1_Entry>;
  
  UpdateFederationRelationship: grpc.handleUnaryCall<_anchorage_admin_v1_UpdateFederationRelationshipRequest__Output, _anchorage_admin_v1_FederationRelationship>;
  
  /**
   * Checks the whole chain, its checkpoints and its head (see the README).
   */
  VerifyAudit: grpc.handleUnaryCall<_anchorage_admin_v1_VerifyAuditRequest__Output, _anchorage_admin_v1_AuditVerification>;
  
}

export interface AdminDefinition extends grpc.ServiceDefinition {
  ActivateAuthority: MethodDefinition<_anchorage_admin_v1_AuthorityRequest, _anchorage_admin_v1_AuthorityChange, _anchorage_admin_v1_AuthorityRequest__Output, _anchorage_admin_v1_AuthorityChange__Output>
  BanAgent: MethodDefinition<_anchorage_admin_v1_BanAgentRequest, _anchorage_admin_v1_AgentBan, _anchorage_admin_v1_BanAgentRequest__Output, _anchorage_admin_v1_AgentBan__Output>
  BatchCreateEntry: MethodDefinition<_anchorage_admin_v1_BatchCreateEntryRequest, _anchorage_admin_v1_BatchCreateEntryResponse, _anchorage_admin_v1_BatchCreateEntryRequest__Output, _anchorage_admin_v1_BatchCreateEntryResponse__Output>
  CreateEntry: MethodDefinition<_anchorage_admin_v1_CreateEntryRequest, _anchorage_admin_v1_Entry, _anchorage_admin_v1_CreateEntryRequest__Output, _anchorage_admin_v1_Entry__Output>
  CreateFederationRelationship: MethodDefinition<_anchorage_admin_v1_CreateFederationRelationshipRequest, _anchorage_admin_v1_FederationRelationship, _anchorage_admin_v1_CreateFederationRelationshipRequest__Output, _anchorage_admin_v1_FederationRelationship__Output>
  CreateJoinToken: MethodDefinition<_anchorage_admin_v1_CreateJoinTokenRequest, _anchorage_admin_v1_JoinToken, _anchorage_admin_v1_CreateJoinTokenRequest__Output, _anchorage_admin_v1_JoinToken__Output>
  DeleteEntry: MethodDefinition<_anchorage_admin_v1_DeleteEntryRequest, _anchorage_admin_v1_Entry, _anchorage_admin_v1_DeleteEntryRequest__Output, _anchorage_admin_v1_Entry__Output>
  DeleteFederatedBundle: MethodDefinition<_anchorage_admin_v1_DeleteFederatedBundleRequest, _anchorage_admin_v1_FederatedBundle, _anchorage_admin_v1_DeleteFederatedBundleRequest__Output, _anchorage_admin_v1_FederatedBundle__Output>
  DeleteFederationRelationship: MethodDefinition<_anchorage_admin_v1_DeleteFederationRelationshipRequest, _anchorage_admin_v1_FederationRelationship, _anchorage_admin_v1_DeleteFederationRelationshipRequest__Output, _anchorage_admin_v1_FederationRelationship__Output>
  EvictAgent: MethodDefinition<_anchorage_admin_v1_EvictAgentRequest, _anchorage_admin_v1_Agent, _anchorage_admin_v1_EvictAgentRequest__Output, _anchorage_admin_v1_Agent__Output>
  GetAgent: MethodDefinition<_anchorage_admin_v1_GetAgentRequest, _anchorage_admin_v1_Agent, _anchorage_admin_v1_GetAgentRequest__Output, _anchorage_admin_v1_Agent__Output>
  GetBundle: MethodDefinition<_anchorage_admin_v1_GetBundleRequest, _anchorage_admin_v1_Bundle, _anchorage_admin_v1_GetBundleRequest__Output, _anchorage_admin_v1_Bundle__Output>
  GetCAStatus: MethodDefinition<_anchorage_admin_v1_GetCAStatusRequest, _anchorage_admin_v1_CAStatus, _anchorage_admin_v1_GetCAStatusRequest__Output, _anchorage_admin_v1_CAStatus__Output>
  GetEntry: MethodDefinition<_anchorage_admin_v1_GetEntryRequest, _anchorage_admin_v1_Entry, _anchorage_admin_v1_GetEntryRequest__Output, _anchorage_admin_v1_Entry__Output>
  GetFederationRelationship: MethodDefinition<_anchorage_admin_v1_GetFederationRelationshipRequest, _anchorage_admin_v1_FederationRelationship, _anchorage_admin_v1_GetFederationRelationshipRequest__Output, _anchorage_admin_v1_FederationRelationship__Output>
  GetKeyProtection: MethodDefinition<_anchorage_admin_v1_GetKeyProtectionRequest, _anchorage_admin_v1_KeyProtectionReport, _anchorage_admin_v1_GetKeyProtectionRequest__Output, _anchorage_admin_v1_KeyProtectionReport__Output>
  ListAgents: MethodDefinition<_anchorage_admin_v1_ListAgentsRequest, _anchorage_admin_v1_ListAgentsResponse, _anchorage_admin_v1_ListAgentsRequest__Output, _anchorage_admin_v1_ListAgentsResponse__Output>
  ListAuditRecords: MethodDefinition<_anchorage_admin_v1_ListAuditRecordsRequest, _anchorage_admin_v1_AuditRecord, _anchorage_admin_v1_ListAuditRecordsRequest__Output, _anchorage_admin_v1_AuditRecord__Output>
  ListAuthorities: MethodDefinition<_anchorage_admin_v1_ListAuthoritiesRequest, _anchorage_admin_v1_ListAuthoritiesResponse, _anchorage_admin_v1_ListAuthoritiesRequest__Output, _anchorage_admin_v1_ListAuthoritiesResponse__Output>
  ListEntries: MethodDefinition<_anchorage_admin_v1_ListEntriesRequest, _anchorage_admin_v1_ListEntriesResponse, _anchorage_admin_v1_ListEntriesRequest__Output, _anchorage_admin_v1_ListEntriesResponse__Output>
  ListFederatedBundles: MethodDefinition<_anchorage_admin_v1_ListFederatedBundlesRequest, _anchorage_admin_v1_ListFederatedBundlesResponse, _anchorage_admin_v1_ListFederatedBundlesRequest__Output, _anchorage_admin_v1_ListFederatedBundlesResponse__Output>
  ListFederationRelationships: MethodDefinition<_anchorage_admin_v1_ListFederationRelationshipsRequest, _anchorage_admin_v1_ListFederationRelationshipsResponse, _anchorage_admin_v1_ListFederationRelationshipsRequest__Output, _anchorage_admin_v1_ListFederationRelationshipsResponse__Output>
  ListTrustAnchors: MethodDefinition<_anchorage_admin_v1_ListTrustAnchorsRequest, _anchorage_admin_v1_ListTrustAnchorsResponse, _anchorage_admin_v1_ListTrustAnchorsRequest__Output, _anchorage_admin_v1_ListTrustAnchorsResponse__Output>
  MintJWTSVID: MethodDefinition<_anchorage_admin_v1_MintJWTSVIDRequest, _anchorage_admin_v1_MintJWTSVIDResponse, _anchorage_admin_v1_MintJWTSVIDRequest__Output, _anchorage_admin_v1_MintJWTSVIDResponse__Output>
  MintX509SVID: MethodDefinition<_anchorage_admin_v1_MintX509SVIDRequest, _anchorage_admin_v1_MintX509SVIDResponse, _anchorage_admin_v1_MintX509SVIDRequest__Output, _anchorage_admin_v1_MintX509SVIDResponse__Output>
  PrepareAuthority: MethodDefinition<_anchorage_admin_v1_AuthorityRequest, _anchorage_admin_v1_AuthorityChange, _anchorage_admin_v1_AuthorityRequest__Output, _anchorage_admin_v1_AuthorityChange__Output>
  RefreshFederationRelationship: MethodDefinition<_anchorage_admin_v1_RefreshFederationRelationshipRequest, _anchorage_admin_v1_FederationRelationship, _anchorage_admin_v1_RefreshFederationRelationshipRequest__Output, _anchorage_admin_v1_FederationRelationship__Output>
  RevokeAuthority: MethodDefinition<_anchorage_admin_v1_AuthorityRequest, _anchorage_admin_v1_AuthorityChange, _anchorage_admin_v1_AuthorityRequest__Output, _anchorage_admin_v1_AuthorityChange__Output>
  SetFederatedBundle: MethodDefinition<_anchorage_admin_v1_SetFederatedBundleRequest, _anchorage_admin_v1_FederatedBundle, _anchorage_admin_v1_SetFederatedBundleRequest__Output, _anchorage_admin_v1_FederatedBundle__Output>
  TaintAuthority: MethodDefinition<_anchorage_admin_v1_AuthorityRequest, _anchorage_admin_v1_AuthorityChange, _anchorage_admin_v1_AuthorityRequest__Output, _anchorage_admin_v1_AuthorityChange__Output>
  UnbanAgent: MethodDefinition<_anchorage_admin_v1_UnbanAgentRequest, _anchorage_admin_v1_AgentBan, _anchorage_admin_v1_UnbanAgentRequest__Output, _anchorage_admin_v1_AgentBan__Output>
  UpdateEntry: MethodDefinition<_anchorage_admin_v1_UpdateEntryRequest, _anchorage_admin_v1_Entry, _anchorage_admin_v1_UpdateEntryRequest__Output, _anchorage_admin_v1_Entry__Output>
  UpdateFederationRelationship: MethodDefinition<_anchorage_admin_v1_UpdateFederationRelationshipRequest, _anchorage_admin_v1_FederationRelationship, _anchorage_admin_v1_UpdateFederationRelationshipRequest__Output, _anchorage_admin_v1_FederationRelationship__Output>
  VerifyAudit: MethodDefinition<_anchorage_admin_v1_VerifyAuditRequest, _anchorage_admin_v1_AuditVerification, _anchorage_admin_v1_VerifyAuditRequest__Output, _anchorage_admin_v1_AuditVerification__Output>
}
