import { type LimitDecision, LimitEngine, type RouteLimitSpec } from '@tollgate/core'
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { FASTIFY_OPTION_NAMES, type TollgateFastifyOptions } from './options.js'
import { rateLimitHook } from './rate-limit-hook.js'
import { Tollgate } from './tollgate.js'

declare module 'fastify' {
  interface FastifyInstance {
    tollgate: Tollgate
  }
  interface FastifyContextConfig {
    /** This route's limits: a string, options, or `false` for none. */
    rateLimit?: RouteLimitSpec<FastifyRequest>
  }
  interface FastifyRequest {
    /** The rate-limit decision for this request, when the route is limited. */
    rateLimit: LimitDecision | null
  }
}

function asArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return []
  return Array.isArray(value) ? value : [value]
}

async function tollgatePlugin(app: FastifyInstance, options: TollgateFastifyOptions): Promise<void> {
  const engine = new LimitEngine<FastifyRequest>(options, app.log, FASTIFY_OPTION_NAMES)
  const hookName = options.hook ?? 'onRequest'
  if (hookName !== 'onRequest' && hookName !== 'preHandler') {
    throw new TypeError(
      `tollgate: option "hook" must be "onRequest" or "preHandler"; got ${JSON.stringify(hookName)}`,
    )
  }

  app.decorate('tollgate', new Tollgate(engine))
  app.decorateRequest('rateLimit', null)

  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = asArray(route.method).join(',')
    const where = `config.rateLimit of ${methods} ${route.url}`
    const limit = engine.route(`${methods} ${route.url}`, route.config?.rateLimit, where)
    if (limit === null) return
    const hook = rateLimitHook(limit, engine.headers)
    // Count before the route's own hooks so a rejected request costs as little as possible.
    route[hookName] = [hook, ...asArray(route[hookName] as never)] as never
  })

  app.addHook('onClose', async () => {
    await engine.close()
  })
}

/** The tollgate Fastify plugin: register it before the routes it should limit. */
export const tollgate = fp(tollgatePlugin, { fastify: '5.x', name: '@tollgate/fastify' })
