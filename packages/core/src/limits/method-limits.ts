import { METHODS } from 'node:http'
import { fail } from '../validation.js'
import type { RateLimiter } from './limiter.js'

/** The `methods` route option as a set; only methods Node's HTTP parser accepts. */
export function methodSet(option: string, methods: unknown): ReadonlySet<string> | undefined {
  if (methods === undefined) return undefined
  if (!Array.isArray(methods) || methods.length === 0 || !methods.every((m) => METHODS.includes(m))) {
    fail(option, 'a non-empty array of HTTP methods in upper case, e.g. ["POST"]', methods)
  }
  return new Set(methods)
}

/**
 * One limiter per method, made on first use. Only methods Node's HTTP parser knows get their own
 * (it refuses any other), so the map stays as small as that list.
 */
export function methodLimiters(
  base: RateLimiter,
  create: (method: string) => RateLimiter,
): (method: string) => RateLimiter {
  const byMethod = new Map<string, RateLimiter>()
  return (method) => {
    let limiter = byMethod.get(method)
    if (limiter === undefined) {
      if (!METHODS.includes(method)) return base
      limiter = create(method)
      byMethod.set(method, limiter)
    }
    return limiter
  }
}
