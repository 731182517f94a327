import type { GatewayOptions, ObserveOptions, RateLimitOptions } from '@tollgate/core'
import { optionNames } from '@tollgate/core/internal'
import type { FastifyRequest } from 'fastify'

export interface TollgateFastifyOptions
  extends RateLimitOptions<FastifyRequest>,
    GatewayOptions<FastifyRequest>,
    ObserveOptions {
  /**
   * The lifecycle hook that counts requests. `onRequest` (default) rejects before
   * the body is read; `preHandler` lets `cost` or `keyGenerator` read `request.body`.
   */
  hook?: 'onRequest' | 'preHandler'
}

type FastifyOwnOptions = Omit<
  TollgateFastifyOptions,
  keyof RateLimitOptions<FastifyRequest> | keyof GatewayOptions<FastifyRequest> | keyof ObserveOptions
>

/** The options only the Fastify plugin has, checked against its options type. */
export const FASTIFY_OPTION_NAMES = optionNames<FastifyOwnOptions>()(['hook'])

export const HOOK_NAMES = ['onRequest', 'preHandler'] as const
