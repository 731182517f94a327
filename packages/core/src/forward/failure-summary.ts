import type { IncomingMessage, ServerResponse } from 'node:http'
import { sendJsonError } from './errors.js'

/** What the failed attempts of one request saw, summed up as the one answer the client gets. */
export class FailureSummary {
  sawBadGateway = false
  sawOverload = false
  timedOut = false
  /** The shortest `Retry-After` any overloaded backend (or the balancer) asked for. */
  retryAfterMs: number | undefined

  /** Whether any attempt failed in a way that makes the summary a better answer than the balancer's own. */
  get any(): boolean {
    return this.sawBadGateway || this.sawOverload || this.timedOut
  }

  noteRetryAfter(retryAfterMs: number | undefined): void {
    if (retryAfterMs !== undefined && (this.retryAfterMs === undefined || retryAfterMs < this.retryAfterMs)) {
      this.retryAfterMs = retryAfterMs
    }
  }

  /** 504 when every attempt timed out, 503 when every backend was overloaded, else 502. */
  answer(req: IncomingMessage, res: ServerResponse): void {
    if (this.timedOut && !this.sawBadGateway && !this.sawOverload) {
      sendJsonError(req, res, 504, 'backend_timeout', 'the backend did not start answering in time')
    } else if (this.sawBadGateway || !this.sawOverload) {
      sendJsonError(req, res, 502, 'bad_gateway', 'no backend could be reached')
    } else {
      sendJsonError(
        req,
        res,
        503,
        'backend_unavailable',
        'every backend tried is overloaded',
        this.retryAfterMs,
      )
    }
  }
}
