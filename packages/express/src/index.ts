// Loads the `declare global` that adds `req.rateLimit` to Express's Request: without an import
// from the entry point, the emitted index.d.ts would not pull it in and users would get TS2339.
import './limit-middleware.js'

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
export { type ExpressServerOptions, expressServer } from './express-server.js'
export { type ExpressTollgate, type Gate, tollgate } from './express-tollgate.js'
export type { TollgateExpressOptions } from './options.js'
export { keepRawBody } from './raw-body.js'
