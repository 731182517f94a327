import { LimitEngine, OptionError, type RouteLimitOptions } from '@tollgate/core'
import type { Request, RequestHandler } from 'express'
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
  /** Releases the store's timers (never a Redis client you passed in). */
  close(): Promise<void>
}

/** Creates the Express side of tollgate: `const gate = tollgate({ defaultLimits: '200 per day' })`. */
export function tollgate(options: TollgateExpressOptions = {}): Gate {
  const engine = new LimitEngine<Request>(options, console)
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
    async close() {
      await engine.close()
    },
  }
}
