export type {
  LimitDecision,
  RateLimitOptions,
  RouteLimitOptions,
  WindowState,
} from '@tollgate/core'
export { LimitParseError, OptionError } from '@tollgate/core'
export { type Gate, tollgate } from './gate.js'
export type { TollgateExpressOptions } from './options.js'
