// Original file: proto/anchorage/agent/v1/agent.proto


export interface SyncAuthorizedEntriesRequest {
}

export interface SyncAuthorizedEntriesRequest__Output {
}
