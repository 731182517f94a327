import { tollgate } from './plugin.js'

export type {
  LimitDecision,
  RateLimitOptions,
  RouteLimitOptions,
  RouteLimitSpec,
  WindowState,
} from '@tollgate/core'
export { LimitParseError, OptionError } from '@tollgate/core'
export type { TollgateFastifyOptions } from './options.js'
export { tollgate } from './plugin.js'
export type { Tollgate } from './tollgate.js'
export default tollgate
