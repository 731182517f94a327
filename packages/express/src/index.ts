export type {
  BackendConfig,
  BackendSnapshot,
  BackendStatus,
  BackendsHandle,
  BackendView,
  FlexibleLimiterFactory,
  FlexibleLimiterOptions,
  FlexibleStoreOption,
  ForwardOptions,
  GatewayOptions,
  HitResult,
  LimitDecision,
  LimitStore,
  PickContext,
  PickerFunction,
  RateLimitItem,
  RateLimitOptions,
  RouteLimitOptions,
  RouteLimitSpec,
  StrategyName,
  WindowSpec,
  WindowState,
} from '@tollgate/core'
export {
  BalancerError,
  flexibleStore,
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
