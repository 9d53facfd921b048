import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AgentClient as _anchorage_agent_v1_AgentClient, AgentDefinition as _anchorage_agent_v1_AgentDefinition } from './anchorage/agent/v1/Agent.js';
import type { AgentMintJWTSVIDRequest as _anchorage_agent_v1_AgentMintJWTSVIDRequest, AgentMintJWTSVIDRequest__Output as _anchorage_agent_v1_AgentMintJWTSVIDRequest__Output } from './anchorage/agent/v1/AgentMintJWTSVIDRequest.js';
import type { AgentMintJWTSVIDResponse as _anchorage_agent_v1_AgentMintJWTSVIDResponse, AgentMintJWTSVIDResponse__Output as _anchorage_agent_v1_AgentMintJWTSVIDResponse__Output } from './anchorage/agent/v1/AgentMintJWTSVIDResponse.js';
import type { AttestAgentRequest as _anchorage_agent_v1_AttestAgentRequest, AttestAgentRequest__Output as _anchorage_agent_v1_AttestAgentRequest__Output } from './anchorage/agent/v1/AttestAgentRequest.js';
import type { AttestAgentResponse as _anchorage_agent_v1_AttestAgentResponse, AttestAgentResponse__Output as _anchorage_agent_v1_AttestAgentResponse__Output } from './anchorage/agent/v1/AttestAgentResponse.js';
import type { AttestationParams as _anchorage_agent_v1_AttestationParams, AttestationParams__Output as _anchorage_agent_v1_AttestationParams__Output } from './anchorage/agent/v1/AttestationParams.js';
import type { AttestationResult as _anchorage_agent_v1_AttestationResult, AttestationResult__Output as _anchorage_agent_v1_AttestationResult__Output } from './anchorage/agent/v1/AttestationResult.js';
import type { AuthorizedEntry as _anchorage_agent_v1_AuthorizedEntry, AuthorizedEntry__Output as _anchorage_agent_v1_AuthorizedEntry__Output } from './anchorage/agent/v1/AuthorizedEntry.js';
import type { BatchSignX509SVIDRequest as _anchorage_agent_v1_BatchSignX509SVIDRequest, BatchSignX509SVIDRequest__Output as _anchorage_agent_v1_BatchSignX509SVIDRequest__Output } from './anchorage/agent/v1/BatchSignX509SVIDRequest.js';
import type { BatchSignX509SVIDResponse as _anchorage_agent_v1_BatchSignX509SVIDResponse, BatchSignX509SVIDResponse__Output as _anchorage_agent_v1_BatchSignX509SVIDResponse__Output } from './anchorage/agent/v1/BatchSignX509SVIDResponse.js';
import type { RenewAgentRequest as _anchorage_agent_v1_RenewAgentRequest, RenewAgentRequest__Output as _anchorage_agent_v1_RenewAgentRequest__Output } from './anchorage/agent/v1/RenewAgentRequest.js';
import type { RenewAgentResponse as _anchorage_agent_v1_RenewAgentResponse, RenewAgentResponse__Output as _anchorage_agent_v1_RenewAgentResponse__Output } from './anchorage/agent/v1/RenewAgentResponse.js';
import type { ReportStateRequest as _anchorage_agent_v1_ReportStateRequest, ReportStateRequest__Output as _anchorage_agent_v1_ReportStateRequest__Output } from './anchorage/agent/v1/ReportStateRequest.js';
import type { ReportStateResponse as _anchorage_agent_v1_ReportStateResponse, ReportStateResponse__Output as _anchorage_agent_v1_ReportStateResponse__Output } from './anchorage/agent/v1/ReportStateResponse.js';
import type { SyncAuthorizedEntriesRequest as _anchorage_agent_v1_SyncAuthorizedEntriesRequest, SyncAuthorizedEntriesRequest__Output as _anchorage_agent_v1_SyncAuthorizedEntriesRequest__Output } from './anchorage/agent/v1/SyncAuthorizedEntriesRequest.js';
import type { SyncAuthorizedEntriesResponse as _anchorage_agent_v1_SyncAuthorizedEntriesResponse, SyncAuthorizedEntriesResponse__Output as _anchorage_agent_v1_SyncAuthorizedEntriesResponse__Output } from './anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';
import type { X509SVIDParams as _anchorage_agent_v1_X509SVIDParams, X509SVIDParams__Output as _anchorage_agent_v1_X509SVIDParams__Output } from './anchorage/agent/v1/X509SVIDParams.js';
import type { X509SVIDResult as _anchorage_agent_v1_X509SVIDResult, X509SVIDResult__Output as _anchorage_agent_v1_X509SVIDResult__Output } from './anchorage/agent/v1/X509SVIDResult.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  anchorage: {
    agent: {
      v1: {
        Agent: SubtypeConstructor<typeof grpc.Client, _anchorage_agent_v1_AgentClient> & { service: _anchorage_agent_v1_AgentDefinition }
        AgentMintJWTSVIDRequest: MessageTypeDefinition<_anchorage_agent_v1_AgentMintJWTSVIDRequest, _anchorage_agent_v1_AgentMintJWTSVIDRequest__Output>
        AgentMintJWTSVIDResponse: MessageTypeDefinition<_anchorage_agent_v1_AgentMintJWTSVIDResponse, _anchorage_agent_v1_AgentMintJWTSVIDResponse__Output>
        AttestAgentRequest: MessageTypeDefinition<_anchorage_agent_v1_AttestAgentRequest, _anchorage_agent_v1_AttestAgentRequest__Output>
        AttestAgentResponse: MessageTypeDefinition<_anchorage_agent_v1_AttestAgentResponse, _anchorage_agent_v1_AttestAgentResponse__Output>
        AttestationParams: MessageTypeDefinition<_anchorage_agent_v1_AttestationParams, _anchorage_agent_v1_AttestationParams__Output>
        AttestationResult: MessageTypeDefinition<_anchorage_agent_v1_AttestationResult, _anchorage_agent_v1_AttestationResult__Output>
        AuthorizedEntry: MessageTypeDefinition<_anchorage_agent_v1_AuthorizedEntry, _anchorage_agent_v1_AuthorizedEntry__Output>
        BatchSignX509SVIDRequest: MessageTypeDefinition<_anchorage_agent_v1_BatchSignX509SVIDRequest, _anchorage_agent_v1_BatchSignX509SVIDRequest__Output>
        BatchSignX509SVIDResponse: MessageTypeDefinition<_anchorage_agent_v1_BatchSignX509SVIDResponse, _anchorage_agent_v1_BatchSignX509SVIDResponse__Output>
        RenewAgentRequest: MessageTypeDefinition<_anchorage_agent_v1_RenewAgentRequest, _anchorage_agent_v1_RenewAgentRequest__Output>
        RenewAgentResponse: MessageTypeDefinition<_anchorage_agent_v1_RenewAgentResponse, _anchorage_agent_v1_RenewAgentResponse__Output>
        ReportStateRequest: MessageTypeDefinition<_anchorage_agent_v1_ReportStateRequest, _anchorage_agent_v1_ReportStateRequest__Output>
        ReportStateResponse: MessageTypeDefinition<_anchorage_agent_v1_ReportStateResponse, _anchorage_agent_v1_ReportStateResponse__Output>
        SyncAuthorizedEntriesRequest: MessageTypeDefinition<_anchorage_agent_v1_SyncAuthorizedEntriesRequest, _anchorage_agent_v1_SyncAuthorizedEntriesRequest__Output>
        SyncAuthorizedEntriesResponse: MessageTypeDefinition<_anchorage_agent_v1_SyncAuthorizedEntriesResponse, _anchorage_agent_v1_SyncAuthorizedEntriesResponse__Output>
        X509SVIDParams: MessageTypeDefinition<_anchorage_agent_v1_X509SVIDParams, _anchorage_agent_v1_X509SVIDParams__Output>
        X509SVIDResult: MessageTypeDefinition<_anchorage_agent_v1_X509SVIDResult, _anchorage_agent_v1_X509SVIDResult__Output>
      }
    }
  }
}

