import { LimitedRoute, type LimitOutcome } from '@tollgate/core/internal'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

function setHeader(reply: FastifyReply, name: string, value: string): void {
  reply.header(name, value)
}

/**
 * A callback-style hook (no promise unless the store or a user callback is async)
 * that counts the request and answers what the core makes of the outcome (429, 400 or 500).
 */
export function rateLimitHook(route: LimitedRoute<FastifyRequest>) {
  function apply(
    outcome: LimitOutcome,
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    if (outcome === null) return done()
    const decision = LimitedRoute.decisionOf(outcome)
    if (decision !== null) request.rateLimit = decision
    const rejection = route.apply(request, outcome, reply, setHeader)
    if (rejection === undefined) return done()
    reply.code(rejection.status).send(rejection.body)
  }

  return function tollgateRateLimit(
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    const result = route.check(request, request.ip)
    if (result instanceof Promise) {
      // One promise per request rather than a then() and a catch(): `check` never rejects.
      result.then((outcome) => {
        try {
          apply(outcome, request, reply, done)
        } catch (error) {
          done(error as Error)
        }
      }, done)
    } else {
      apply(result, request, reply, done)
    }
  }
}

/**
 * The after-response hook of a route whose limit settles (`deductWhen`): added only to such routes.
 * It reads the decision the rate-limit hook left on the request.
 */
export function settleHook(route: LimitedRoute<FastifyRequest>) {
  return function tollgateSettle(
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    const settled = route.settle(request, request.rateLimit, reply.statusCode)
    if (settled instanceof Promise) settled.then(() => done(), done)
    else done()
  }
}
