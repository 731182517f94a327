import type { LimitDecision } from './decision.js'

/** The default 429 body: OpenAI's error shape, so SDK clients surface the message. */
export function defaultRejectionBody(decision: LimitDecision): unknown {
  return {
    error: {
      message: `Rate limit exceeded: ${decision.limit}. Retry in ${decision.retryAfter} s.`,
      type: 'rate_limit_exceeded',
      code: 'rate_limit_exceeded',
      limit: decision.limit,
      retry_after: decision.retryAfter,
    },
  }
}
