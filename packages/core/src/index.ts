/**
 * The public surface of `@tollgate/core`: what an application writes or reads when it uses
 * tollgate through `@tollgate/fastify` or `@tollgate/express` — limit notation, option and
 * decision types, stores, picker types and the errors tollgate throws. The pieces the adapters
 * assemble tollgate from are on `@tollgate/core/internal`, which may change in any release.
 *
 * How the layers fit together and the path of one request: docs/DESIGN.md ("Layers").
 */

// Options (what `register(tollgate, …)` and `tollgate(…)` take).
export type {
  FairnessOptions,
  FairQueueSnapshot,
  PriorityClass,
  PriorityQueueSnapshot,
  TenantQueueSnapshot,
} from './admission/index.js'
export type { ActiveHealthCheckOptions } from './balance/active-health-check.js'
// Backends and strategies (`strategy: (candidates, ctx) => …`, `app.tollgate.backends`).
export type { BackendView } from './balance/backend-state.js'
export type { BalancerOptions, HealthOptions } from './balance/balancer.js'
export type { ConcurrencyQueueOptions } from './balance/concurrency-queue.js'
// Backends found by DNS (a Kubernetes headless Service).
export {
  type DiscoveredBackends,
  DnsDiscovery,
  type DnsDiscoveryOptions,
  type DnsResolverLike,
} from './balance/dns-discovery.js'
// Errors.
export { BalancerError } from './balance/errors.js'
export type { KvFeedSnapshot } from './balance/kv-events/kv-event-feeds.js'
export type { LoadReportOptions } from './balance/load-reports/backend-scrapers.js'
export type { MetricsFormat } from './balance/load-reports/engines.js'
export type { OutlierDetectorOptions } from './balance/outlier-detector.js'
export type { ConsistentHashOptions } from './balance/pickers/consistent-hash.js'
export { type PickerFunction, type StrategyName, strategyNames } from './balance/pickers/picker.js'
export type { PrecisePrefixOptions, PrecisePrefixStats } from './balance/pickers/precise-prefix.js'
export type { PrefixAffinityOptions } from './balance/pickers/prefix-affinity.js'
export type { RoutingStateOptions } from './balance/routing-state/routing-state.js'
export type {
  BackendConfig,
  BackendSnapshot,
  BackendStatus,
  LoadReportSnapshot,
  PickContext,
} from './balance/types.js'
export type { ZoneSnapshot } from './balance/zones.js'
export type { PathRewrite } from './forward/request-target.js'
export type { RetryBudgetOptions } from './forward/retry-budget.js'
export type { UpstreamPoolOptions } from './forward/upstream-pools.js'
export type { BackendsHandle } from './gateway/backends-handle.js'
export type { ForwardOptions, GatewayOptions, HashKeySource } from './gateway/gateway-options.js'
export { apiKeyKey } from './limits/api-key.js'
// Decisions (`request.rateLimit`, `rejectionBody`, `onExceeded`).
export type { LimitDecision, WindowState } from './limits/decision.js'
// rate-limiter-flexible as a store: `store: flexibleStore((opts, ready) => new RateLimiterPostgres(…))`.
export {
  type FlexibleStoreOption,
  type FlexibleStoreSettings,
  flexibleStore,
} from './limits/flexible-option.js'
export type {
  FlexibleLimiter,
  FlexibleLimiterFactory,
  FlexibleLimiterOptions,
  FlexibleResult,
} from './limits/flexible-store.js'
export type { HeaderMode } from './limits/headers.js'
// Stores: the ones tollgate ships and the interface of your own.
export {
  InsuredStore,
  type InsuredStoreOptions,
  type Logger,
  type StoreErrorMode,
} from './limits/insured-store.js'
export { clientKeyFromIp } from './limits/ip-key.js'
export { MemoryStore, type MemoryStoreOptions } from './limits/memory-store.js'
// Limit notation: "200 per day, 50 per hour".
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
  DeductWhen,
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
export {
  type HitResult,
  LIMIT_STRATEGIES,
  type LimitStore,
  type LimitStrategy,
  type WindowSpec,
} from './limits/store.js'
export { CHARS_PER_TOKEN } from './limits/tokens/estimate.js'
export {
  MAX_CHARGED_TOKENS,
  type TokenReservation,
  type TokenSpec,
  type TokenWindowState,
} from './limits/tokens/token-budget.js'
export { openAIDuration } from './limits/tokens/token-headers.js'
export {
  MemoryTokenStore,
  type MemoryTokenStoreOptions,
  type ReserveResult,
  type TokenStore,
} from './limits/tokens/token-store.js'
export type { UsageSource } from './limits/tokens/usage-observer.js'
// Metrics, tracing and logs (`metrics`, `tracing`, `accessLog`), and the events they consume.
export type {
  BackendChange,
  ForwardStartInfo,
  GatewayEvents,
  RequestEvents,
} from './observe/events.js'
export type { ObserveOptions } from './observe/observability.js'
export type { MetricsOptions } from './observe/prometheus-metrics.js'
export type { TracingOptions } from './observe/tracing.js'
export { OptionError } from './validation.js'
