import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import {
  DnsDiscovery,
  type DnsResolverLike,
  type RoutingStateOptions,
  type StoreOption,
  type TokenReservation,
} from '@tollgate/core'
import tollgate from '@tollgate/fastify'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerFactory,
} from 'fastify'
import type { GatewayConfig, RouteConfig } from './config/types.js'
import { registerProbes } from './probes.js'
import { ErrorsOnlyRequestLog } from './request-log.js'
import type { GenerationInfo } from './status/status-document.js'
import { registerStatus } from './status/status-routes.js'
import { routeScope, type StatusStats } from './status/status-stats.js'

/** An error the plugin raised while one route of the file was registered. */
export class RouteError extends Error {
  constructor(
    readonly routeIndex: number,
    override readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause))
  }
}

export type RequestHandler = (request: IncomingMessage, response: ServerResponse) => void

export interface GatewayAppOptions {
  store: StoreOption
  /** The shared routing state's client and knobs; undefined: this replica routes alone. */
  routingState?: RoutingStateOptions
  logger: FastifyBaseLogger | boolean
  /** The readiness checks failing now (Redis not reached, shutting down); none: `/readyz` answers 200. */
  failing: () => string[]
  /** Resolves the `dns` backend entries; default the system's resolver. */
  dnsResolver?: DnsResolverLike
  /** What the status page shows, kept by the running gateway across reloads; none: no page data. */
  status?: { stats: StatusStats; generation: GenerationInfo }
}

/** One Fastify gateway built from a config, not listening: the caller routes requests to `handler`. */
export interface GatewayApp {
  app: FastifyInstance
  handler: RequestHandler
  discoveries: DnsDiscovery[]
}

function handlerOf(route: RouteConfig, app: FastifyInstance) {
  if (route.models) return app.tollgate.listModels()
  const forward = route.forward === true || route.forward === undefined ? {} : route.forward
  return app.tollgate.forward(forward)
}

/**
 * Builds (and readies) the Fastify app a config describes. The app never listens itself: the
 * CLI's one HTTP server hands each request to the current app's handler, so a reload can build a
 * new app and switch to it while the old one finishes its requests (see server/generations.ts).
 */
export async function buildGatewayApp(
  config: GatewayConfig,
  options: GatewayAppOptions,
): Promise<GatewayApp> {
  let handler: RequestHandler | undefined
  const loggerOption =
    typeof options.logger === 'boolean' ? { logger: options.logger } : { loggerInstance: options.logger }
  const serverFactory: FastifyServerFactory = (fastifyHandler) => {
    handler = fastifyHandler
    return createServer()
  }
  // Fastify's own two lines per request (incoming, completed) only at debug: the access log
  // (`accessLog: true`) is the one line per request an operator reads.
  const level = typeof options.logger === 'object' ? options.logger.level : 'info'
  const app: FastifyInstance = Fastify({
    ...loggerOption,
    ...(level === 'debug' || level === 'trace' ? {} : { logController: new ErrorsOnlyRequestLog() }),
    trustProxy: (config.listen.trustProxy ?? false) as boolean,
    serverFactory,
  })
  const discoveries: DnsDiscovery[] = []
  try {
    const stats = config.status ? options.status?.stats : undefined
    const pluginOptions = {
      ...config.plugin,
      store: options.store,
      routingState: options.routingState,
      ...(stats && {
        observers: [stats],
        onTokensSettled: (request: FastifyRequest, reservation: TokenReservation) =>
          stats.tokensCharged(
            routeScope(request.routeOptions.method, request.routeOptions.url ?? ''),
            reservation.charged ?? 0,
          ),
      }),
    }
    const usesBackends = config.plugin.backends !== undefined || config.dnsBackends.length > 0
    if (usesBackends) pluginOptions.backends ??= []
    await app.register(tollgate, pluginOptions)
    stats?.setRoutes(config.routes.map((route) => routeScope(route.method, route.path)))
    config.routes.forEach((route, index) => {
      const scope = routeScope(route.method, route.path)
      try {
        app.route({
          method: route.method,
          url: route.path,
          ...(stats && {
            onResponse: (_request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
              stats.answered(scope)
              done()
            },
          }),
          config: route.rateLimit === undefined ? undefined : { rateLimit: route.rateLimit },
          handler: handlerOf(route, app) as never,
        })
      } catch (error) {
        throw new RouteError(index, error)
      }
    })
    registerProbes(app, options.failing)
    if (config.metrics) app.get(config.metrics.path, { config: { rateLimit: false } }, app.tollgate.metrics())
    if (config.status && options.status)
      registerStatus(app, config, options.status.stats, options.status.generation, usesBackends)
    if (usesBackends) {
      for (const { entry } of config.dnsBackends) {
        const { dns, port, scheme, basePath, refreshMs, ...backend } = entry
        discoveries.push(
          new DnsDiscovery(app.tollgate.backends, {
            name: dns,
            port,
            scheme,
            basePath,
            refreshMs,
            backend,
            logger: app.log,
            resolver: options.dnsResolver,
          }),
        )
      }
    }
    app.addHook('onClose', async () => {
      for (const discovery of discoveries) discovery.close()
    })
    await app.ready()
    await Promise.all(discoveries.map((discovery) => discovery.start()))
  } catch (error) {
    await app.close().catch(() => {})
    throw error
  }
  if (handler === undefined) throw new Error('tollgate: Fastify did not hand over its request handler')
  return { app, handler, discoveries }
}
