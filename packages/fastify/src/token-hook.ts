import { isLimitAnswer, type LimitedRoute, type TokenRoute } from '@tollgate/core/internal'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { clientAddress } from './client-address.js'
import { rateLimitHook } from './rate-limit-hook.js'

type Hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void

function getHeader(reply: FastifyReply, name: string): unknown {
  return reply.getHeader(name)
}

function setHeader(reply: FastifyReply, name: string, value: string): void {
  reply.header(name, value)
}

/**
 * Reserves a non-forward route's tokens after its request limits (so it reuses their client key):
 * the default estimate, or one from `request.body` under `hook: 'preHandler'`. The handler may
 * settle with `request.rateLimit.settleTokens(n)`; otherwise the reservation stands. A refusal
 * gives back what `limited` counted.
 */
export function tokenHook(
  tokens: TokenRoute<FastifyRequest>,
  limited: LimitedRoute<FastifyRequest> | null,
): Hook {
  return function tollgateTokens(request, reply, done) {
    tokens.reserve(request, clientAddress(request), request.rateLimit, request.body).then((outcome) => {
      if (outcome === null) return done()
      const granted = tokens.grant(
        request,
        outcome,
        request.rateLimit,
        limited,
        reply,
        getHeader,
        setHeader,
        reply.raw,
      )
      if (isLimitAnswer(granted)) {
        reply.code(granted.status).send(granted.body)
        return
      }
      request.rateLimit = granted
      done()
    }, done)
  }
}

/** The hooks tollgate puts before a route's own: request limits, then (non-forward) tokens. */
export function limitHooks(
  limited: LimitedRoute<FastifyRequest> | null,
  tokens: TokenRoute<FastifyRequest> | null,
): Hook[] {
  const hooks: Hook[] = []
  if (limited !== null) hooks.push(rateLimitHook(limited))
  if (tokens !== null) hooks.push(tokenHook(tokens, limited))
  return hooks
}
