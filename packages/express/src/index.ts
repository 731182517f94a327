// Loads the `declare global` that adds `req.rateLimit` to Express's Request: without an import
// from the entry point, the emitted index.d.ts would not pull it in and users would get TS2339.
import './limit-middleware.js'

export type {
  BackendConfig,
  BackendSnapshot,
  ForwardOptions,
  LimitDecision,
  RateLimitOptions,
  RouteLimitOptions,
  StrategyName,
  WindowState,
} from '@tollgate/core'
export { BalancerError, LimitParseError, OptionError } from '@tollgate/core'
export { type Gate, tollgate } from './gate.js'
export type { TollgateExpressOptions } from './options.js'
export { keepRawBody } from './raw-body.js'
