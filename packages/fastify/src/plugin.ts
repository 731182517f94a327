import {
  GATEWAY_OPTION_NAMES,
  Gateway,
  type LimitDecision,
  LimitEngine,
  OptionError,
  pickGatewayOptions,
  type RouteLimitSpec,
} from '@tollgate/core'
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { addForwardBodyParsers } from './any-body-parser.js'
import { isForwardHandler } from './forward-handler.js'
import { FASTIFY_OPTION_NAMES, type TollgateFastifyOptions } from './options.js'
import { rateLimitHook } from './rate-limit-hook.js'
import { keepRawBody } from './raw-body.js'
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

/**
 * Options Fastify's own `register` accepts for any plugin; they reach the plugin too,
 * and must not trip the check for misspelled tollgate options.
 */
const REGISTER_OPTION_NAMES = new Set(['prefix', 'logLevel', 'logSerializers'])

function ownOptions(options: TollgateFastifyOptions): TollgateFastifyOptions {
  const raw: unknown = options
  if (raw === null || typeof raw !== 'object') return options
  if (!Object.keys(options).some((name) => REGISTER_OPTION_NAMES.has(name))) return options
  const own: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(options)) {
    if (!REGISTER_OPTION_NAMES.has(name)) own[name] = value
  }
  return own as TollgateFastifyOptions
}

async function tollgatePlugin(app: FastifyInstance, registered: TollgateFastifyOptions): Promise<void> {
  const options = ownOptions(registered)
  // Checked before the engine exists, so a bad value leaves nothing open behind it.
  const hookName = options.hook ?? 'onRequest'
  if (hookName !== 'onRequest' && hookName !== 'preHandler') {
    throw new OptionError(
      `tollgate: option "hook" must be "onRequest" or "preHandler"; got ${JSON.stringify(hookName)}`,
    )
  }
  const engine = new LimitEngine<FastifyRequest>(options, app.log, [
    ...FASTIFY_OPTION_NAMES,
    ...GATEWAY_OPTION_NAMES,
  ])
  let gateway: Gateway<FastifyRequest> | undefined
  try {
    gateway = options.backends === undefined ? undefined : new Gateway(pickGatewayOptions(options), app.log)
  } catch (error) {
    await engine.close()
    throw error
  }
  const maxBodyBytes = gateway?.maxBodyBytes ?? 0
  const bodyLimit = Number.isSafeInteger(maxBodyBytes) ? maxBodyBytes : Number.MAX_SAFE_INTEGER

  app.decorate('tollgate', new Tollgate(engine, gateway))
  app.decorateRequest('rateLimit', null)
  // A catch-all parser of the app's own (registered before tollgate) stays in charge.
  if (gateway !== undefined) addForwardBodyParsers(app)

  // A HEAD request runs the GET handler, so it must draw on the GET route's counters
  // rather than open a second budget for the same work. Fastify adds the HEAD twin
  // right after its GET route, so the last GET scope seen at a URL is the twin's.
  const getScopes = new Map<string, string>()

  app.addHook('onRoute', (route: RouteOptions) => {
    if (isForwardHandler(route.handler)) {
      route.preParsing = [keepRawBody, ...asArray(route.preParsing as never)] as never
      route.bodyLimit ??= bodyLimit
    }
    const methodList = asArray(route.method)
    const methods = methodList.join(',')
    const where = `config.rateLimit of ${methods} ${route.url}`
    let scope = `${methods} ${route.url}`
    if (methodList.includes('GET')) getScopes.set(route.url, scope)
    else if (methods === 'HEAD') scope = getScopes.get(route.url) ?? scope
    const limit = engine.route(scope, route.config?.rateLimit, where)
    if (limit === null) return
    const hook = rateLimitHook(limit, engine.headers)
    // Count before the route's own hooks so a rejected request costs as little as possible.
    route[hookName] = [hook, ...asArray(route[hookName] as never)] as never
  })

  // Fastify closes its HTTP server (and waits for every connection) before any plugin's onClose
  // runs, so a long stream would hold app.close() open with the shutdown deadline never started:
  // the gateway starts closing here, while the server stops taking connections.
  app.addHook('preClose', (done) => {
    gateway?.close().catch(() => {})
    done()
  })
  app.addHook('onClose', async () => {
    await gateway?.close()
    await engine.close()
  })
}

/** The tollgate Fastify plugin: register it before the routes it should limit. */
export const tollgate = fp(tollgatePlugin, { fastify: '5.x', name: '@tollgate/fastify' })
