import { tollgate } from './plugin.js'

export type {
  BackendConfig,
  BackendSnapshot,
  ForwardOptions,
  LimitDecision,
  RateLimitOptions,
  RouteLimitOptions,
  RouteLimitSpec,
  StrategyName,
  WindowState,
} from '@tollgate/core'
export { BalancerError, LimitParseError, OptionError } from '@tollgate/core'
export type { ForwardHandler } from './forward-handler.js'
export type { TollgateFastifyOptions } from './options.js'
export { tollgate } from './plugin.js'
export type { Tollgate } from './tollgate.js'
export default tollgate
