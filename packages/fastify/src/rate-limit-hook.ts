import type { LimitDecision } from '@tollgate/core'
import type { LimitedRoute } from '@tollgate/core/internal'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

function setHeader(reply: FastifyReply, name: string, value: string): void {
  reply.header(name, value)
}

/**
 * A callback-style hook (no promise unless the store or a user callback is async)
 * that counts the request and answers what the core makes of the decision.
 */
export function rateLimitHook(route: LimitedRoute<FastifyRequest>) {
  function apply(
    decision: LimitDecision | null,
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    if (decision === null) return done()
    request.rateLimit = decision
    let rejection: ReturnType<typeof route.apply>
    try {
      rejection = route.apply(request, decision, reply, setHeader)
    } catch (error) {
      return done(error as Error)
    }
    if (rejection === undefined) return done()
    reply.code(rejection.status).send(rejection.body)
  }

  return function tollgateRateLimit(
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    let result: ReturnType<typeof route.check>
    try {
      result = route.check(request, request.ip)
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
