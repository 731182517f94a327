import type { LimitDecision } from './decision.js'

/**
 * Which rate-limit headers to send: the IETF fields (draft-ietf-httpapi-ratelimit-headers-11:
 * `RateLimit-Policy` and `RateLimit`), the legacy `X-RateLimit-*` trio, both, or none.
 */
export type HeaderMode = 'ietf' | 'legacy' | 'both' | false

export const HEADER_MODES: readonly HeaderMode[] = ['ietf', 'legacy', 'both', false]

/**
 * Calls `set(target, name, value)` once per header (no closure per request). `policyHeader` is the limiter's precomputed
 * `RateLimit-Policy` value. The legacy `X-RateLimit-Reset` is in seconds from now,
 * as @fastify/rate-limit sends it.
 */
export function writeRateLimitHeaders<Target>(
  decision: LimitDecision,
  mode: HeaderMode,
  policyHeader: string,
  target: Target,
  set: (target: Target, name: string, value: string) => void,
): void {
  if (mode === false) return
  const bound = decision.binding
  const resetSeconds = Math.ceil(bound.resetMs / 1000)
  if (mode !== 'legacy') {
    set(target, 'ratelimit-policy', policyHeader)
    set(target, 'ratelimit', `"${bound.policy}";r=${bound.remaining};t=${resetSeconds}`)
  }
  if (mode !== 'ietf') {
    set(target, 'x-ratelimit-limit', String(bound.item.amount))
    set(target, 'x-ratelimit-remaining', String(bound.remaining))
    set(target, 'x-ratelimit-reset', String(resetSeconds))
  }
}
