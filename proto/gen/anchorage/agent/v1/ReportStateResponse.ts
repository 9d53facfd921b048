// Original file: proto/anchorage/agent/v1/agent.proto


export interface ReportStateResponse {
}

export interface ReportStateResponse__Output {
}
