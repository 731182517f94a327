import { fail } from '../validation.js'
import { clientKeyFromIp } from './ip-key.js'
import { LimitParseError, parseLimits, type RateLimitItem } from './notation.js'
import type { RateLimitOptions } from './options.js'

export const ENGINE_OPTIONS = [
  'defaultLimits',
  'applicationLimits',
  'keyGenerator',
  'cost',
  'store',
  'keyPrefix',
  'headers',
  'skip',
  'deductWhen',
  'allowList',
  'rejectionBody',
  'onExceeded',
  'clientRetryMaxSeconds',
  'logger',
  'defaultTokens',
  'defaultMaxTokens',
  'openaiHeaders',
  'onTokensSettled',
  'limitStrategy',
] as const
export const ROUTE_OPTIONS = [
  'limits',
  'keyGenerator',
  'cost',
  'skip',
  'deductWhen',
  'scope',
  'methods',
  'perMethod',
  'tokens',
  'limitStrategy',
] as const

/** Limit options that adapters layer their own on top of. */
export const RATE_LIMIT_OPTION_NAMES: readonly string[] = ENGINE_OPTIONS

/** The limits an option holds; a parse error names the option. */
export function parseOption(option: string, text: unknown): RateLimitItem[] {
  if (typeof text !== 'string') fail(option, 'a limit string such as "200 per day, 50 per hour"', text)
  try {
    return parseLimits(text)
  } catch (error) {
    if (error instanceof LimitParseError) error.message = `tollgate: option "${option}": ${error.message}`
    throw error
  }
}

/** The `allowList` option as one predicate: a function as given, or a set of keys and IPs. */
export function allowListPredicate<Req>(
  allowList: RateLimitOptions<Req>['allowList'],
): ((request: Req, key: string) => boolean) | undefined {
  if (allowList === undefined) return undefined
  if (typeof allowList === 'function') return allowList
  if (!Array.isArray(allowList) || !allowList.every((k) => typeof k === 'string')) {
    fail('allowList', 'an array of client keys / IPs or a function (request, key) => boolean', allowList)
  }
  const keys = new Set(allowList.map((k) => clientKeyFromIp(k)))
  return (_request, key) => keys.has(key)
}
