import type { LimitDecision, RouteLimitSpec } from '@tollgate/core'
import { checkOneOf, TollgateCore } from '@tollgate/core/internal'
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { addForwardBodyParsers } from './any-body-parser.js'
import { FastifyTollgate } from './fastify-tollgate.js'
import { type ForwardHandler, isForwardHandler } from './forward-handler.js'
import { FASTIFY_OPTION_NAMES, HOOK_NAMES, type TollgateFastifyOptions } from './options.js'
import { settleHook } from './rate-limit-hook.js'
import { keepRawBody } from './raw-body.js'
import { warnOnEarlierRoutes, warnOnMiscasedRateLimit } from './route-warnings.js'
import { limitHooks } from './token-hook.js'

declare module 'fastify' {
  interface FastifyInstance {
    tollgate: FastifyTollgate
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
  // Checked before the core exists, so a bad value leaves nothing open behind it.
  const hookName = options?.hook ?? 'onRequest'
  checkOneOf('hook', hookName, HOOK_NAMES)
  const core = new TollgateCore<FastifyRequest>(options, {
    logger: app.log,
    optionNames: FASTIFY_OPTION_NAMES,
    backendsExample: "register the plugin with { backends: [{ url: 'http://…' }] }",
  })
  const logger = options.logger ?? app.log
  warnOnEarlierRoutes(app, logger)
  const maxBodyBytes = core.maxBodyBytes
  const bodyLimit = Number.isSafeInteger(maxBodyBytes) ? maxBodyBytes : Number.MAX_SAFE_INTEGER

  app.decorate('tollgate', new FastifyTollgate(core))
  app.decorateRequest('rateLimit', null)
  // A catch-all parser of the app's own (registered before tollgate) stays in charge.
  if (core.hasBackends) addForwardBodyParsers(app)

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
    if (methods !== 'HEAD') warnOnMiscasedRateLimit(logger, route.config, `${methods} ${route.url}`)
    const where = `config.rateLimit of ${methods} ${route.url}`
    let scope = `${methods} ${route.url}`
    if (methodList.includes('GET')) getScopes.set(route.url, scope)
    else if (methods === 'HEAD') scope = getScopes.get(route.url) ?? scope
    const limited = core.limitRoute(scope, route.config?.rateLimit, where)
    const forward = isForwardHandler(route.handler)
    const tokens = core.tokenRoute(route.config?.rateLimit, scope, where, forward)
    if (tokens !== null && forward)
      route.handler = (route.handler as ForwardHandler).withTokens(tokens, limited)
    const ours = limitHooks(limited, forward ? null : tokens)
    // Count before the route's own hooks so a rejected request costs as little as possible.
    if (ours.length > 0) route[hookName] = [...ours, ...asArray(route[hookName] as never)] as never
    if (limited?.settlesAfterResponse) {
      route.onResponse = [...asArray(route.onResponse as never), settleHook(limited)] as never
    }
  })

  // Fastify closes its HTTP server (and waits for every connection) before any plugin's onClose
  // runs, so the gateway starts closing here, while the server stops taking connections.
  app.addHook('preClose', (done) => {
    core.beginClose()
    done()
  })
  app.addHook('onClose', () => core.close())
}

/** The tollgate Fastify plugin: register it before the routes it should limit. */
export const tollgate = fp(tollgatePlugin, { fastify: '5.x', name: '@tollgate/fastify' })
