export type {
  BackendConfig,
  BackendSnapshot,
  BackendStatus,
  BackendsHandle,
  BackendView,
  FairnessOptions,
  FairQueueSnapshot,
  ForwardOptions,
  GatewayOptions,
  HitResult,
  LimitDecision,
  LimitStore,
  PickContext,
  PickerFunction,
  PriorityClass,
  RateLimitItem,
  RateLimitOptions,
  RouteLimitOptions,
  RouteLimitSpec,
  StrategyName,
  TenantQueueSnapshot,
  WindowSpec,
  WindowState,
} from '@tollgate/core'
export {
  BalancerError,
  LimitParseError,
  MemoryStore,
  OptionError,
  parseLimits,
  RedisStore,
  StoreUnavailableError,
} from '@tollgate/core'
export { type ExpressTollgate, type Gate, tollgate } from './express-tollgate.js'
export type { TollgateExpressOptions } from './options.js'
export { keepRawBody } from './raw-body.js'
