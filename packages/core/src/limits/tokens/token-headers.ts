import type { LimitDecision } from '../decision.js'
import type { HeaderMode } from '../headers.js'
import type { TokenReservation } from './token-budget.js'

/** Reads a header already set on the response (to add to the request limits' RateLimit fields). */
export type HeaderGetter<Target> = (target: Target, name: string) => unknown

function joined<Target>(target: Target, get: HeaderGetter<Target>, name: string, value: string): string {
  const before = get(target, name)
  return typeof before === 'string' && before !== '' ? `${before}, ${value}` : value
}

/**
 * OpenAI's duration form for `x-ratelimit-reset-*`: `250ms`, `12s`, `6m0s`, `1h2m3s`, as their
 * SDKs and users' retry code parse it.
 */
export function openAIDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`
  let seconds = Math.ceil(ms / 1000)
  const hours = Math.floor(seconds / 3600)
  seconds -= hours * 3600
  const minutes = Math.floor(seconds / 60)
  seconds -= minutes * 60
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`
  if (minutes > 0) return `${minutes}m${seconds}s`
  return `${seconds}s`
}

/**
 * Adds the token windows to the RateLimit fields the request limits may have set already (one
 * `RateLimit-Policy` list, the binding token window as a second `RateLimit` item, both with
 * `qu="tokens"` in the policy), and with `openai` the `x-ratelimit-*-tokens` trio plus, when
 * request limits apply, the `-requests` trio.
 */
export function writeTokenHeaders<Target>(
  reservation: TokenReservation,
  policyHeader: string,
  mode: HeaderMode,
  openai: boolean,
  decision: LimitDecision | null,
  target: Target,
  get: HeaderGetter<Target>,
  set: (target: Target, name: string, value: string) => void,
): void {
  const bound = reservation.binding
  if (mode === 'ietf' || mode === 'both') {
    set(target, 'ratelimit-policy', joined(target, get, 'ratelimit-policy', policyHeader))
    const item = `"${bound.policy}";r=${bound.remaining};t=${Math.ceil(bound.resetMs / 1000)}`
    set(target, 'ratelimit', joined(target, get, 'ratelimit', item))
  }
  if (!openai) return
  set(target, 'x-ratelimit-limit-tokens', String(bound.item.amount))
  set(target, 'x-ratelimit-remaining-tokens', String(bound.remaining))
  set(target, 'x-ratelimit-reset-tokens', openAIDuration(bound.resetMs))
  if (decision !== null) {
    const b = decision.binding
    set(target, 'x-ratelimit-limit-requests', String(b.item.amount))
    set(target, 'x-ratelimit-remaining-requests', String(b.remaining))
    set(target, 'x-ratelimit-reset-requests', openAIDuration(b.resetMs))
  }
}

/** The 429 body of a token budget that has no room: which budget, and when it resets. */
export function tokenRejectionBody(reservation: TokenReservation): unknown {
  return {
    error: {
      message:
        `Token budget exhausted: ${reservation.limit} tokens (${reservation.binding.policy}). ` +
        `Retry in ${reservation.retryAfter} s.`,
      type: 'tokens',
      code: 'rate_limit_exceeded',
      limit: reservation.limit,
      policy: reservation.binding.policy,
      retry_after: reservation.retryAfter,
    },
  }
}
