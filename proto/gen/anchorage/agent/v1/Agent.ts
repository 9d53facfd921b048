// Original file: proto/anchorage/agent/v1/agent.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AgentMintJWTSVIDRequest as _anchorage_agent_v1_AgentMintJWTSVIDRequest, AgentMintJWTSVIDRequest__Output as _anchorage_agent_v1_AgentMintJWTSVIDRequest__Output } from '../../../anchorage/agent/v1/AgentMintJWTSVIDRequest.js';
import type { AgentMintJWTSVIDResponse as _anchorage_agent_v1_AgentMintJWTSVIDResponse, AgentMintJWTSVIDResponse__Output as _anchorage_agent_v1_AgentMintJWTSVIDResponse__Output } from '../../../anchorage/agent/v1/AgentMintJWTSVIDResponse.js';
import type { AttestAgentRequest as _anchorage_agent_v1_AttestAgentRequest, AttestAgentRequest__Output as _anchorage_agent_v1_AttestAgentRequest__Output } from '../../../anchorage/agent/v1/AttestAgentRequest.js';
import type { AttestAgentResponse as _anchorage_agent_v1_AttestAgentResponse, AttestAgentResponse__Output as _anchorage_agent_v1_AttestAgentResponse__Output } from '../../../anchorage/agent/v1/AttestAgentResponse.js';
import type { BatchSignX509SVIDRequest as _anchorage_agent_v1_BatchSignX509SVIDRequest, BatchSignX509SVIDRequest__Output as _anchorage_agent_v1_BatchSignX509SVIDRequest__Output } from '../../../anchorage/agent/v1/BatchSignX509SVIDRequest.js';
import type { BatchSignX509SVIDResponse as _anchorage_agent_v1_BatchSignX509SVIDResponse, BatchSignX509SVIDResponse__Output as _anchorage_agent_v1_BatchSignX509SVIDResponse__Output } from '../../../anchorage/agent/v1/BatchSignX509SVIDResponse.js';
import type { RenewAgentRequest as _anchorage_agent_v1_RenewAgentRequest, RenewAgentRequest__Output as _anchorage_agent_v1_RenewAgentRequest__Output } from '../../../anchorage/agent/v1/RenewAgentRequest.js';
import type { RenewAgentResponse as _anchorage_agent_v1_RenewAgentResponse, RenewAgentResponse__Output as _anchorage_agent_v1_RenewAgentResponse__Output } from '../../../anchorage/agent/v1/RenewAgentResponse.js';
import type { ReportStateRequest as _anchorage_agent_v1_ReportStateRequest, ReportStateRequest__Output as _anchorage_agent_v1_ReportStateRequest__Output } from '../../../anchorage/agent/v1/ReportStateRequest.js';
import type { ReportStateResponse as _anchorage_agent_v1_ReportStateResponse, ReportStateResponse__Output as _anchorage_agent_v1_ReportStateResponse__Output } from '../../../anchorage/agent/v1/ReportStateResponse.js';
import type { SyncAuthorizedEntriesRequest as _anchorage_agent_v1_SyncAuthorizedEntriesRequest, SyncAuthorizedEntriesRequest__Output as _anchorage_agent_v1_SyncAuthorizedEntriesRequest__Output } from '../../../anchorage/agent/v1/SyncAuthorizedEntriesRequest.js';
import type { SyncAuthorizedEntriesResponse as _anchorage_agent_v1_SyncAuthorizedEntriesResponse, SyncAuthorizedEntriesResponse__Output as _anchorage_agent_v1_SyncAuthorizedEntriesResponse__Output } from '../../../anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';

export interface AgentClient extends grpc.Client {
  /**
   * Node attestation. The agent opens the stream with params: the type of
   * its node attestor, that attestor's payload and a CSR for a key it
   * generated. The server's attestor of that type may answer with challenges
   * (each answered by one challenge_response) before the server sends the
   * result: the agent's SVID and the trust bundle. join_token sends no
   * challenge. Bounded: sizes, rounds and total time (ca/agentapi/attest.ts).
   */
  AttestAgent(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_anchorage_agent_v1_AttestAgentRequest, _anchorage_agent_v1_AttestAgentResponse__Output>;
  AttestAgent(options?: grpc.CallOptions): grpc.ClientDuplexStream<_anchorage_agent_v1_AttestAgentRequest, _anchorage_agent_v1_AttestAgentResponse__Output>;
  /**
   * Node attestation. The agent opens the stream with params: the type of
   * its node attestor, that attestor's payload and a CSR for a key it
   * generated. The server's attestor of that type may answer with challenges
   * (each answered by one challenge_response) before the server sends the
   * result: the agent's SVID and the trust bundle. join_token sends no
   * challenge. Bounded: sizes, rounds and total time (ca/agentapi/attest.ts).
   */
  attestAgent(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_anchorage_agent_v1_AttestAgentRequest, _anchorage_agent_v1_AttestAgentResponse__Output>;
  attestAgent(options?: grpc.CallOptions): grpc.ClientDuplexStream<_anchorage_agent_v1_AttestAgentRequest, _anchorage_agent_v1_AttestAgentResponse__Output>;
  
  /**
   * Signs workload CSRs made on the agent, for entries it is authorized for.
   */
  BatchSignX509SVID(argument: _anchorage_agent_v1_BatchSignX509SVIDRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_BatchSignX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  BatchSignX509SVID(argument: _anchorage_agent_v1_BatchSignX509SVIDRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_agent_v1_BatchSignX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  BatchSignX509SVID(argument: _anchorage_agent_v1_BatchSignX509SVIDRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_BatchSignX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  BatchSignX509SVID(argument: _anchorage_agent_v1_BatchSignX509SVIDRequest, callback: grpc.requestCallback<_anchorage_agent_v1_BatchSignX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Signs workload CSRs made on the agent, for entries it is authorized for.
   */
  batchSignX509Svid(argument: _anchorage_agent_v1_BatchSignX509SVIDRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_BatchSignX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  batchSignX509Svid(argument: _anchorage_agent_v1_BatchSignX509SVIDRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_agent_v1_BatchSignX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  batchSignX509Svid(argument: _anchorage_agent_v1_BatchSignX509SVIDRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_BatchSignX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  batchSignX509Svid(argument: _anchorage_agent_v1_BatchSignX509SVIDRequest, callback: grpc.requestCallback<_anchorage_agent_v1_BatchSignX509SVIDResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * A JWT-SVID for an entry the agent is authorized for.
   */
  MintJWTSVID(argument: _anchorage_agent_v1_AgentMintJWTSVIDRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_AgentMintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  MintJWTSVID(argument: _anchorage_agent_v1_AgentMintJWTSVIDRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_agent_v1_AgentMintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  MintJWTSVID(argument: _anchorage_agent_v1_AgentMintJWTSVIDRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_AgentMintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  MintJWTSVID(argument: _anchorage_agent_v1_AgentMintJWTSVIDRequest, callback: grpc.requestCallback<_anchorage_agent_v1_AgentMintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  /**
   * A JWT-SVID for an entry the agent is authorized for.
   */
  mintJwtsvid(argument: _anchorage_agent_v1_AgentMintJWTSVIDRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_AgentMintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  mintJwtsvid(argument: _anchorage_agent_v1_AgentMintJWTSVIDRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_agent_v1_AgentMintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  mintJwtsvid(argument: _anchorage_agent_v1_AgentMintJWTSVIDRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_AgentMintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  mintJwtsvid(argument: _anchorage_agent_v1_AgentMintJWTSVIDRequest, callback: grpc.requestCallback<_anchorage_agent_v1_AgentMintJWTSVIDResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * A new agent SVID for a new key, before the current one reaches half-life.
   */
  RenewAgent(argument: _anchorage_agent_v1_RenewAgentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_RenewAgentResponse__Output>): grpc.ClientUnaryCall;
  RenewAgent(argument: _anchorage_agent_v1_RenewAgentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_agent_v1_RenewAgentResponse__Output>): grpc.ClientUnaryCall;
  RenewAgent(argument: _anchorage_agent_v1_RenewAgentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_RenewAgentResponse__Output>): grpc.ClientUnaryCall;
  RenewAgent(argument: _anchorage_agent_v1_RenewAgentRequest, callback: grpc.requestCallback<_anchorage_agent_v1_RenewAgentResponse__Output>): grpc.ClientUnaryCall;
  /**
   * A new agent SVID for a new key, before the current one reaches half-life.
   */
  renewAgent(argument: _anchorage_agent_v1_RenewAgentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_RenewAgentResponse__Output>): grpc.ClientUnaryCall;
  renewAgent(argument: _anchorage_agent_v1_RenewAgentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_agent_v1_RenewAgentResponse__Output>): grpc.ClientUnaryCall;
  renewAgent(argument: _anchorage_agent_v1_RenewAgentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_RenewAgentResponse__Output>): grpc.ClientUnaryCall;
  renewAgent(argument: _anchorage_agent_v1_RenewAgentRequest, callback: grpc.requestCallback<_anchorage_agent_v1_RenewAgentResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * What the agent holds and its clock: sent after every sync message and
   * every minute, so the server knows when it last heard from the agent,
   * which bundle it holds (drift) and how far its clock is off (anchorage
   * check, anchors list). Reports closer than a second apart are not stored.
   */
  ReportState(argument: _anchorage_agent_v1_ReportStateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_ReportStateResponse__Output>): grpc.ClientUnaryCall;
  ReportState(argument: _anchorage_agent_v1_ReportStateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_agent_v1_ReportStateResponse__Output>): grpc.ClientUnaryCall;
  ReportState(argument: _anchorage_agent_v1_ReportStateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_ReportStateResponse__Output>): grpc.ClientUnaryCall;
  ReportState(argument: _anchorage_agent_v1_ReportStateRequest, callback: grpc.requestCallback<_anchorage_agent_v1_ReportStateResponse__Output>): grpc.ClientUnaryCall;
  /**
   * What the agent holds and its clock: sent after every sync message and
   * every minute, so the server knows when it last heard from the agent,
   * which bundle it holds (drift) and how far its clock is off (anchorage
   * check, anchors list). Reports closer than a second apart are not stored.
   */
  reportState(argument: _anchorage_agent_v1_ReportStateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_ReportStateResponse__Output>): grpc.ClientUnaryCall;
  reportState(argument: _anchorage_agent_v1_ReportStateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_anchorage_agent_v1_ReportStateResponse__Output>): grpc.ClientUnaryCall;
  reportState(argument: _anchorage_agent_v1_ReportStateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_anchorage_agent_v1_ReportStateResponse__Output>): grpc.ClientUnaryCall;
  reportState(argument: _anchorage_agent_v1_ReportStateRequest, callback: grpc.requestCallback<_anchorage_agent_v1_ReportStateResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * The entries this agent is authorized for and the bundles: the full set at
   * once, then the changes as they happen. Never polled.
   */
  SyncAuthorizedEntries(argument: _anchorage_agent_v1_SyncAuthorizedEntriesRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_anchorage_agent_v1_SyncAuthorizedEntriesResponse__Output>;
  SyncAuthorizedEntries(argument: _anchorage_agent_v1_SyncAuthorizedEntriesRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_anchorage_agent_v1_SyncAuthorizedEntriesResponse__Output>;
  /**
   * The entries this agent is authorized for and the bundles: the full set at
   * once, then the changes as they happen. Never polled.
   */
  syncAuthorizedEntries(argument: _anchorage_agent_v1_SyncAuthorizedEntriesRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_anchorage_agent_v1_SyncAuthorizedEntriesResponse__Output>;
  syncAuthorizedEntries(argument: _anchorage_agent_v1_SyncAuthorizedEntriesRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_anchorage_agent_v1_SyncAuthorizedEntriesResponse__Output>;
  
}

export interface AgentHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Node attestation. The agent opens the stream with params: the type of
   * its node attestor, that attestor's payload and a CSR for a key it
   * generated. The server's attestor of that type may answer with challenges
   * (each answered by one challenge_response) before the server sends the
   * result: the agent's SVID and the trust bundle. join_token sends no
   * challenge. Bounded: sizes, rounds and total time (ca/agentapi/attest.ts).
   */
  AttestAgent: grpc.handleBidiStreamingCall<_anchorage_agent_v1_AttestAgentRequest__Output, _anchorage_agent_v1_AttestAgentResponse>;
  
  /**
   * Signs workload CSRs made on the agent, for entries it is authorized for.
   */
  BatchSignX509SVID: grpc.handleUnaryCall<_anchorage_agent_v1_BatchSignX509SVIDRequest__Output, _anchorage_agent_v1_BatchSignX509SVIDResponse>;
  
  /**
   * A JWT-SVID for an entry the agent is authorized for.
   */
  MintJWTSVID: grpc.handleUnaryCall<_anchorage_agent_v1_AgentMintJWTSVIDRequest__Output, _anchorage_agent_v1_AgentMintJWTSVIDResponse>;
  
  /**
   * A new agent SVID for a new key, before the current one reaches half-life.
   */
  RenewAgent: grpc.handleUnaryCall<_anchorage_agent_v1_RenewAgentRequest__Output, _anchorage_agent_v1_RenewAgentResponse>;
  
  /**
   * What the agent holds and its clock: sent after every sync message and
   * every minute, so the server knows when it last heard from the agent,
   * which bundle it holds (drift) and how far its clock is off (anchorage
   * check, anchors list). Reports closer than a second apart are not stored.
   */
  ReportState: grpc.handleUnaryCall<_anchorage_agent_v1_ReportStateRequest__Output, _anchorage_agent_v1_ReportStateResponse>;
  
  /**
   * The entries this agent is authorized for and the bundles: the full set at
   * once, then the changes as they happen. Never polled.
   */
  SyncAuthorizedEntries: grpc.handleServerStreamingCall<_anchorage_agent_v1_SyncAuthorizedEntriesRequest__Output, _anchorage_agent_v1_SyncAuthorizedEntriesResponse>;
  
}

export interface AgentDefinition extends grpc.ServiceDefinition {
  AttestAgent: MethodDefinition<_anchorage_agent_v1_AttestAgentRequest, _anchorage_agent_v1_AttestAgentResponse, _anchorage_agent_v1_AttestAgentRequest__Output, _anchorage_agent_v1_AttestAgentResponse__Output>
  BatchSignX509SVID: MethodDefinition<_anchorage_agent_v1_BatchSignX509SVIDRequest, _anchorage_agent_v1_BatchSignX509SVIDResponse, _anchorage_agent_v1_BatchSignX509SVIDRequest__Output, _anchorage_agent_v1_BatchSignX509SVIDResponse__Output>
  MintJWTSVID: MethodDefinition<_anchorage_agent_v1_AgentMintJWTSVIDRequest, _anchorage_agent_v1_AgentMintJWTSVIDResponse, _anchorage_agent_v1_AgentMintJWTSVIDRequest__Output, _anchorage_agent_v1_AgentMintJWTSVIDResponse__Output>
  RenewAgent: MethodDefinition<_anchorage_agent_v1_RenewAgentRequest, _anchorage_agent_v1_RenewAgentResponse, _anchorage_agent_v1_RenewAgentRequest__Output, _anchorage_agent_v1_RenewAgentResponse__Output>
  ReportState: MethodDefinition<_anchorage_agent_v1_ReportStateRequest, _anchorage_agent_v1_ReportStateResponse, _anchorage_agent_v1_ReportStateRequest__Output, _anchorage_agent_v1_ReportStateResponse__Output>
  SyncAuthorizedEntries: MethodDefinition<_anchorage_agent_v1_SyncAuthorizedEntriesRequest, _anchorage_agent_v1_SyncAuthorizedEntriesResponse, _anchorage_agent_v1_SyncAuthorizedEntriesRequest__Output, _anchorage_agent_v1_SyncAuthorizedEntriesResponse__Output>
}
