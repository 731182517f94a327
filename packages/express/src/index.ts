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
