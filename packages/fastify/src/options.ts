import type { GatewayOptions, RateLimitOptions } from '@tollgate/core'
import type { FastifyRequest } from 'fastify'

export interface TollgateFastifyOptions
  extends RateLimitOptions<FastifyRequest>,
    GatewayOptions<FastifyRequest> {
  /**
   * The lifecycle hook that counts requests. `onRequest` (default) rejects before
   * the body is read; `preHandler` lets `cost` or `keyGenerator` read `request.body`.
   */
  hook?: 'onRequest' | 'preHandler'
}

export const FASTIFY_OPTION_NAMES = ['hook'] as const
