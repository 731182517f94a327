import { type HeaderMode, type LimitDecision, type RouteLimit, writeRateLimitHeaders } from '@tollgate/core'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

function setHeader(reply: FastifyReply, name: string, value: string): void {
  reply.header(name, value)
}

/**
 * A callback-style hook (no promise unless the store or a user callback is async)
 * that counts the request, sets the headers and answers 429 when a window is full.
 */
export function rateLimitHook(limit: RouteLimit<FastifyRequest>, headers: HeaderMode) {
  const policyHeader = limit.limiter.policyHeader

  function apply(
    decision: LimitDecision | null,
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    if (decision === null) return done()
    request.rateLimit = decision
    writeRateLimitHeaders(decision, headers, policyHeader, reply, setHeader)
    if (decision.allowed) return done()
    let body: unknown
    try {
      body = limit.rejection(request, decision)
    } catch (error) {
      return done(error as Error)
    }
    reply.header('Retry-After', String(decision.retryAfter)).code(429).send(body)
  }

  return function tollgateRateLimit(
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    let result: ReturnType<typeof limit.check>
    try {
      result = limit.check(request, request.ip)
    } catch (error) {
      return done(error as Error)
    }
    if (result instanceof Promise) {
      result.then(
        (decision) => apply(decision, request, reply, done),
        (error: Error) => done(error),
      )
    } else {
      apply(result, request, reply, done)
    }
  }
}
