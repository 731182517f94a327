import { LATER, LimitedRoute, type LimitOutcome } from '@tollgate/core/internal'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { clientAddress } from './client-address.js'

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

  /** `apply` for an outcome that arrives after the hook returned: a throw goes to Fastify. */
  function applyLater(
    outcome: LimitOutcome,
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    try {
      apply(outcome, request, reply, done)
    } catch (error) {
      done(error as Error)
    }
  }

  // A store that answers by callback (Redis) gets one: a request then makes no promise here.
  const later = route.answersLater

  return function tollgateRateLimit(
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    const ip = clientAddress(request)
    const result = later
      ? route.check(request, ip, (outcome) => applyLater(outcome, request, reply, done))
      : route.check(request, ip)
    if (result === LATER) return
    // One promise per request rather than a then() and a catch(): `check` never rejects.
    if (result instanceof Promise) result.then((outcome) => applyLater(outcome, request, reply, done), done)
    else apply(result, request, reply, done)
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
