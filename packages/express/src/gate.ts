import {
  type BackendsHandle,
  type ForwardOptions,
  GATEWAY_OPTION_NAMES,
  Gateway,
  LimitEngine,
  OptionError,
  pickGatewayOptions,
  type RouteLimitOptions,
} from '@tollgate/core'
import type { Request, RequestHandler } from 'express'
import { forwardMiddleware } from './forward-middleware.js'
import { limitMiddleware } from './limit-middleware.js'
import type { TollgateExpressOptions } from './options.js'

export interface Gate {
  /**
   * A middleware with its own counters. No `spec`: the default limits. A string:
   * these limits instead. Mount it with `app.use(path, ...)` to share one set of
   * counters across every route below the path.
   */
  limit(
    spec?: string | RouteLimitOptions<Request>,
    options?: Omit<RouteLimitOptions<Request>, 'limits'>,
  ): RequestHandler
  /** A handler that forwards the request to one backend chosen by the strategy. */
  forward(options?: ForwardOptions<Request>): RequestHandler
  /** `GET /v1/models` from the registry when backends declare models; forwarded otherwise. */
  listModels(): RequestHandler
  /** Add, remove, drain backends at runtime and read their state. */
  readonly backends: BackendsHandle
  /**
   * Stops forwarding (new forwards get 503), lets in-flight ones finish for up to
   * `shutdownTimeoutMs` and cuts the rest, then releases connections, timers and the store
   * (never a Redis client you passed). Call it together with your server's `close()`, not after
   * it resolves: the server waits for the in-flight streams this deadline bounds.
   */
  close(): Promise<void>
}

/** Creates the Express side of tollgate: `const gate = tollgate({ defaultLimits: '200 per day' })`. */
export function tollgate(options: TollgateExpressOptions = {}): Gate {
  const logger = options.logger ?? console
  const engine = new LimitEngine<Request>(options, console, GATEWAY_OPTION_NAMES)
  let gateway: Gateway<Request> | undefined
  try {
    gateway = options.backends === undefined ? undefined : new Gateway(pickGatewayOptions(options), logger)
  } catch (error) {
    void engine.close()
    throw error
  }
  const requireGateway = (what: string): Gateway<Request> => {
    if (gateway === undefined) {
      throw new OptionError(`tollgate: ${what} needs backends: tollgate({ backends: [{ url: 'http://…' }] })`)
    }
    return gateway
  }
  let count = 0

  return {
    limit(spec, routeOptions) {
      count += 1
      const where = `gate.limit() #${count}`
      if (spec !== undefined && typeof spec !== 'string' && (spec === null || typeof spec !== 'object')) {
        throw new OptionError(
          `tollgate: ${where} takes a limit string or options; got ${JSON.stringify(spec)} (use no middleware for no limit)`,
        )
      }
      const merged =
        typeof spec === 'object' ? { ...spec, ...routeOptions } : { ...routeOptions, limits: spec }
      if (merged.limits === undefined && !engine.hasDefaults) {
        throw new OptionError(
          `tollgate: ${where} has no limit: pass one, e.g. gate.limit('10 per minute'), or set defaultLimits`,
        )
      }
      if (merged.limits === undefined) delete merged.limits
      const limit = engine.route(`limit-${count}`, merged, where)
      if (limit === null) throw new OptionError(`tollgate: ${where} has no limit`)
      return limitMiddleware(limit, engine.headers)
    },
    forward(forwardOptions) {
      return forwardMiddleware(requireGateway('gate.forward()'), forwardOptions, logger)
    },
    listModels() {
      const gw = requireGateway('gate.listModels()')
      const forward = forwardMiddleware(gw, undefined, logger)
      return (req, res, next) => {
        if (!gw.routesByModel) return forward(req, res, next)
        res.json(gw.modelList())
      }
    },
    get backends() {
      return requireGateway('gate.backends').backends
    },
    async close() {
      await gateway?.close()
      await engine.close()
    },
  }
}
