import type { BackendsHandle, ForwardOptions, RouteLimitOptions } from '@tollgate/core'
import { fail, TollgateCore } from '@tollgate/core/internal'
import type { Request, RequestHandler } from 'express'
import { forwardMiddleware } from './forward-middleware.js'
import { limitMiddleware } from './limit-middleware.js'
import type { TollgateExpressOptions } from './options.js'
import { markForward } from './token-handoff.js'

/** What `tollgate()` returns: middleware factories over one set of options, store and backends. */
export interface ExpressTollgate {
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
  /** Answers with the Prometheus exposition text of this gateway's metrics; needs the `metrics` option. */
  metrics(): RequestHandler
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

/** @deprecated the old name of `ExpressTollgate`. */
export type Gate = ExpressTollgate

/** Creates the Express side of tollgate: `const gate = tollgate({ defaultLimits: '200 per day' })`. */
export function tollgate(options: TollgateExpressOptions = {}): ExpressTollgate {
  const core = new TollgateCore<Request>(options, {
    logger: console,
    backendsExample: "tollgate({ backends: [{ url: 'http://…' }] })",
  })
  const logger = options.logger ?? console
  let count = 0

  return {
    limit(spec, routeOptions) {
      count += 1
      const where = `gate.limit() #${count}`
      if (spec !== undefined && typeof spec !== 'string' && (spec === null || typeof spec !== 'object')) {
        fail(where, 'a limit string or options (use no middleware for no limit)', spec)
      }
      const merged =
        typeof spec === 'object' ? { ...spec, ...routeOptions } : { ...routeOptions, limits: spec }
      if (merged.limits === undefined && merged.tokens === undefined && !core.hasDefaults) {
        fail(where, "given a limit, e.g. gate.limit('10 per minute'), or defaultLimits set", undefined)
      }
      if (merged.limits === undefined) delete merged.limits
      const limited =
        merged.limits === undefined && !core.hasDefaults
          ? null
          : core.limitRoute(`limit-${count}`, merged, where)
      const tokens = core.tokenRoute(merged, `limit-${count}`, where, false)
      if (limited === null && tokens === null) fail(where, 'a limit', spec)
      return limitMiddleware(limited, tokens)
    },
    forward(forwardOptions) {
      count += 1
      // defaultTokens: counted per forward() handler, for requests no gate.limit({ tokens }) reserved.
      const tokens = core.tokenRoute(undefined, `forward-${count}`, 'gate.forward()', true)
      return markForward(forwardMiddleware(core.gateway('gate.forward()'), forwardOptions, logger, tokens))
    },
    listModels() {
      const forward = forwardMiddleware(core.gateway('gate.listModels()'), undefined, logger)
      return (req, res, next) => {
        const list = core.modelList()
        if (list === undefined) return forward(req, res, next)
        res.json(list)
      }
    },
    metrics() {
      const metrics = core.metrics('gate.metrics()')
      return (_req, res, next) => {
        metrics.exposition().then(({ contentType, body }) => {
          res.setHeader('content-type', contentType)
          res.end(body)
        }, next)
      }
    },
    get backends() {
      return core.backends('gate.backends')
    },
    close() {
      return core.close()
    },
  }
}
