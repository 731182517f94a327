import { tollgate } from './plugin.js'

export type {
  BackendConfig,
  BackendSnapshot,
  BackendStatus,
  BackendsHandle,
  BackendView,
  FairnessOptions,
  FairQueueSnapshot,
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
  PriorityClass,
  PriorityQueueSnapshot,
  RateLimitItem,
  RateLimitOptions,
  RouteLimitOptions,
  RouteLimitSpec,
  StrategyName,
  TenantQueueSnapshot,
  TokenReservation,
  TokenSpec,
  TokenStore,
  WindowSpec,
  WindowState,
} from '@tollgate/core'
export {
  apiKeyKey,
  BalancerError,
  flexibleStore,
  LimitParseError,
  MemoryStore,
  OptionError,
  parseLimits,
  RedisStore,
  StoreUnavailableError,
} from '@tollgate/core'
export { FastifyTollgate, type Tollgate } from './fastify-tollgate.js'
export type { ForwardHandler } from './forward-handler.js'
export type { TollgateFastifyOptions } from './options.js'
export { tollgate } from './plugin.js'
export default tollgate
