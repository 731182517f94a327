export { ActiveHealthCheck, type ActiveHealthCheckOptions } from './balance/active-health-check.js'
export type { BackendState, BackendView } from './balance/backend-state.js'
export { BackendBalancer, type BalancerOptions, type HealthOptions } from './balance/balancer.js'
export type { ConcurrencyQueueOptions } from './balance/concurrency-queue.js'
export { BalancerError } from './balance/errors.js'
export type { OutlierDetectorOptions } from './balance/outlier-detector.js'
export {
  type ConsistentHashOptions,
  createPicker,
  type Picker,
  type PickerFunction,
  type StrategyName,
  strategyNames,
} from './balance/pickers/index.js'
export type { BackendRegistry } from './balance/registry.js'
export type {
  AttemptOutcome,
  BackendConfig,
  BackendLease,
  BackendSnapshot,
  BackendStatus,
  BackendTarget,
  Balancer,
  PickContext,
} from './balance/types.js'
export { BodyTooLargeError, errorBody, sendJsonError } from './forward/errors.js'
export {
  createForwarder,
  type Forwarder,
  type ForwarderOptions,
  type ForwardObserver,
  type ForwardRequest,
} from './forward/forwarder.js'
export { isJsonRequest, nestsDeeperThan } from './forward/json-fields.js'
export { compilePathRewrite, type PathRewrite } from './forward/request-target.js'
export type { RetryBudgetOptions } from './forward/retry-budget.js'
export type { UpstreamPoolOptions } from './forward/upstream-pools.js'
export { BackendsHandle } from './gateway/backends-handle.js'
export { type ForwardRoute, Gateway, type GatewayRequest } from './gateway/gateway.js'
export {
  type ForwardOptions,
  GATEWAY_OPTION_NAMES,
  type GatewayOptions,
  type HashKeySource,
  pickGatewayOptions,
} from './gateway/gateway-options.js'
export type { LimitDecision, WindowState } from './limits/decision.js'
export { HEADER_MODES, type HeaderMode, writeRateLimitHeaders } from './limits/headers.js'
export { InsuredStore, type Logger, type StoreErrorMode } from './limits/insured-store.js'
export { clientKeyFromIp } from './limits/ip-key.js'
export { LimitEngine, RATE_LIMIT_OPTION_NAMES, RouteLimit } from './limits/limit-engine.js'
export { RateLimiter, type WindowGroup } from './limits/limiter.js'
export { MemoryStore, type MemoryStoreOptions } from './limits/memory-store.js'
export {
  describeLimit,
  LimitParseError,
  parseLimit,
  parseLimits,
  policyName,
  type RateLimitItem,
  type TimeUnit,
} from './limits/notation.js'
export type {
  Cost,
  KeyGenerator,
  RateLimitOptions,
  RedisStoreOption,
  RouteLimitOptions,
  RouteLimitSpec,
  StoreOption,
} from './limits/options.js'
export type { IoRedisLike, NodeRedisLike, RedisClientLike } from './limits/redis-client.js'
export { RedisStore, type RedisStoreOptions, StoreUnavailableError } from './limits/redis-store.js'
export { defaultRejectionBody } from './limits/rejection.js'
export type { HitResult, LimitStore, WindowSpec } from './limits/store.js'
export { OptionError } from './validation.js'
