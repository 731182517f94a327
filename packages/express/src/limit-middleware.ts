import { type HeaderMode, type LimitDecision, type RouteLimit, writeRateLimitHeaders } from '@tollgate/core'
import type { NextFunction, Request, RequestHandler, Response } from 'express'

declare global {
  namespace Express {
    interface Request {
      /** The rate-limit decision for this request, set by `gate.limit()`. */
      rateLimit?: LimitDecision
    }
  }
}

function setHeader(res: Response, name: string, value: string): void {
  res.setHeader(name, value)
}

/** Counts the request, sets the headers and answers 429 when a window is full. */
export function limitMiddleware(limit: RouteLimit<Request>, headers: HeaderMode): RequestHandler {
  const policyHeader = limit.limiter.policyHeader

  function apply(decision: LimitDecision | null, req: Request, res: Response, next: NextFunction): void {
    if (decision === null) return next()
    req.rateLimit = decision
    writeRateLimitHeaders(decision, headers, policyHeader, res, setHeader)
    if (decision.allowed) return next()
    res.setHeader('Retry-After', String(decision.retryAfter))
    res.status(429).json(limit.rejection(req, decision))
  }

  return function tollgateLimit(req: Request, res: Response, next: NextFunction): void {
    let result: ReturnType<typeof limit.check>
    try {
      result = limit.check(req, req.ip)
    } catch (error) {
      return next(error)
    }
    if (result instanceof Promise) {
      result.then((decision) => apply(decision, req, res, next)).catch(next)
    } else {
      try {
        apply(result, req, res, next)
      } catch (error) {
        next(error)
      }
    }
  }
}
