import type {
  ForwardOptions,
  Gateway,
  GatewayRequest,
  LimitedRoute,
  TokenRoute,
} from '@tollgate/core/internal'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { rawBodyOf } from './raw-body.js'

export const FORWARD_HANDLER = Symbol('tollgate.forwardHandler')

export type ForwardHandler = ((request: FastifyRequest, reply: FastifyReply) => Promise<void>) & {
  [FORWARD_HANDLER]: true
  /**
   * The same handler, reserving and settling `tokens` around each forward; a refusal gives back
   * what `limited` (the route's request limits) counted.
   */
  withTokens(tokens: TokenRoute<FastifyRequest>, limited: LimitedRoute<FastifyRequest> | null): ForwardHandler
}

/**
 * A route handler that hands the raw request and response to the gateway. Headers already set on
 * the reply (the rate-limit ones) are carried over, since a hijacked reply no longer sends them
 * itself. Once hijacked, the gateway answers every failure itself (a throwing `hashKey` gets 500).
 */
export function forwardHandler(
  gateway: Gateway<FastifyRequest>,
  options: ForwardOptions<FastifyRequest> | undefined,
): ForwardHandler {
  const route = gateway.route(options)
  const handler = (request: FastifyRequest, reply: FastifyReply): Promise<void> =>
    gateway.forward(route, gatewayRequest(request, reply))
  const withTokens = (
    tokens: TokenRoute<FastifyRequest>,
    limited: LimitedRoute<FastifyRequest> | null,
  ): ForwardHandler => {
    const tokenHandler = (request: FastifyRequest, reply: FastifyReply): Promise<void> =>
      tokens.forward(gateway, route, gatewayRequest(request, reply), request.rateLimit, limited)
    return Object.assign(tokenHandler, { [FORWARD_HANDLER]: true as const, withTokens })
  }
  return Object.assign(handler, { [FORWARD_HANDLER]: true as const, withTokens })
}

function gatewayRequest(request: FastifyRequest, reply: FastifyReply): GatewayRequest<FastifyRequest> {
  {
    const res = reply.raw
    const headers = reply.getHeaders()
    for (const name in headers) {
      const value = headers[name]
      if (value !== undefined) res.setHeader(name, value)
    }
    reply.hijack()
    return {
      req: request.raw,
      res,
      request,
      clientIp: request.ip,
      clientKey: request.rateLimit?.key,
      protocol: request.protocol,
      host: request.host,
      // `ips` lists the socket's address, then each proxy hop Fastify's trustProxy setting
      // trusts: a second entry means the peer itself is trusted, so its X-Forwarded-For chain is
      // kept. A client outside a trusted range (trustProxy: '10.0.0.0/8') does not get its own
      // X-Forwarded-For passed on.
      trustProxy: (request.ips?.length ?? 0) > 1,
      body: rawBodyOf(request),
    }
  }
}

export function isForwardHandler(handler: unknown): handler is ForwardHandler {
  return typeof handler === 'function' && (handler as Partial<ForwardHandler>)[FORWARD_HANDLER] === true
}
