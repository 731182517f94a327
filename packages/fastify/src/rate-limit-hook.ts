import { type HeaderMode, LimitCheckFailure, type LimitOutcome, type RouteLimit } from '@tollgate/core'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

function setHeader(reply: FastifyReply, name: string, value: string): void {
  reply.header(name, value)
}

/**
 * A callback-style hook (no promise unless the store or a user callback is async)
 * that counts the request and answers what core's `respond` says (429, 400 or 500).
 */
export function rateLimitHook(limit: RouteLimit<FastifyRequest>, _headers?: HeaderMode) {
  function apply(
    outcome: LimitOutcome,
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    if (outcome === null) return done()
    if (!(outcome instanceof LimitCheckFailure)) request.rateLimit = outcome
    const answer = limit.respond(request, outcome, reply, setHeader)
    if (answer === null) return done()
    reply.code(answer.status).send(answer.body)
  }

  return function tollgateRateLimit(
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    const result = limit.check(request, request.ip)
    if (result instanceof Promise) {
      result.then((outcome) => apply(outcome, request, reply, done)).catch(done)
    } else {
      apply(result, request, reply, done)
    }
  }
}
