import type { Logger } from '@tollgate/core'
import type { FastifyInstance } from 'fastify'

/** `ratelimit`, `rate_limit`, `RateLimits` … : a key that was meant to be `rateLimit`. */
function isMiscasedRateLimit(key: string): boolean {
  if (key === 'rateLimit') return false
  const folded = key.toLowerCase().replace(/[-_\s]/g, '')
  return folded === 'ratelimit' || folded === 'ratelimits'
}

/**
 * A route `config` key that differs from `rateLimit` only in case, separators or a plural is
 * almost certainly a typo, and the route would run on the default limits (or none) without a word.
 */
export function warnOnMiscasedRateLimit(logger: Logger, config: object | undefined, where: string): void {
  if (config === undefined || config === null) return
  for (const key of Object.keys(config)) {
    if (!isMiscasedRateLimit(key)) continue
    logger.warn(
      `tollgate: ${where} has config.${key}, which tollgate does not read; did you mean config.rateLimit? ` +
        'The route gets the default limits.',
    )
  }
}

/** At most this many lines of the route tree go into the warning. */
const MAX_ROUTE_LINES = 12

/**
 * The plugin adds its hook to each route as the route is declared, so a route declared before the
 * plugin runs is never limited. That happens when `register` is not awaited before the routes
 * (Fastify loads plugins later, on `ready`, while `app.get` takes effect at once) or when routes
 * come first; both look the same from here: the router already holds routes.
 */
export function warnOnEarlierRoutes(app: FastifyInstance, logger: Logger): void {
  const tree = app.printRoutes({ commonPrefix: false }).trimEnd()
  // Each route line ends with its methods, `(GET, HEAD)`; an empty router prints `(empty tree)`.
  if (!/\([A-Z]+(, [A-Z]+)*\)/.test(tree)) return
  const lines = tree.split('\n')
  const shown = lines.slice(0, MAX_ROUTE_LINES).join('\n')
  const more = lines.length > MAX_ROUTE_LINES ? `\n… and ${lines.length - MAX_ROUTE_LINES} more lines` : ''
  logger.warn(
    'tollgate: these routes were declared before the plugin was registered, so no limit applies to them ' +
      '(`await app.register(tollgate, …)` before declaring routes; routes meant to be unlimited can say ' +
      `config: { rateLimit: false } instead):\n${shown}${more}`,
  )
}
