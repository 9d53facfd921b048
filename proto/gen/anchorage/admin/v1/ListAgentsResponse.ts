// Original file: proto/anchorage/admin/v1/admin.proto

import type { Agent as _anchorage_admin_v1_Agent, Agent__Output as _anchorage_admin_v1_Agent__Output } from '../../../anchorage/admin/v1/Agent.js';

export interface ListAgentsResponse {
  'agents'?: (_anchorage_admin_v1_Agent)[];
}

export interface ListAgentsResponse__Output {
  'agents': (_anchorage_admin_v1_Agent__Output)[];
}
