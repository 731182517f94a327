import type { Logger } from '../limits/insured-store.js'
import type { LimitEngine } from '../limits/limit-engine.js'
import type { RateLimitOptions, RouteLimitSpec } from '../limits/options.js'
import type { TokenEngine } from '../limits/tokens/token-engine.js'
import type { GatewayEvents } from '../observe/events.js'
import type { UserCallbacks } from '../user-callback.js'
import { TokenRoute } from './token-route.js'

export interface TokenRoutePlace<Req> {
  readonly spec: RouteLimitSpec<Req> | undefined
  readonly scope: string
  readonly where: string
  readonly forward: boolean
  /** Hears the route's token rejections, by its scope. */
  readonly events?: GatewayEvents | undefined
}

/** The `TokenRoute` of a route setting, with the engine-wide settings filled in. */
export function tokenRouteFor<Req>(
  tokens: TokenEngine<Req>,
  options: RateLimitOptions<Req>,
  engine: LimitEngine<Req>,
  callbacks: UserCallbacks,
  logger: Logger,
  place: TokenRoutePlace<Req>,
): TokenRoute<Req> | null {
  const { spec } = place
  if (spec === false) return null
  const own = typeof spec === 'object' && spec !== null ? spec : undefined
  const budget = tokens.route(own?.scope ?? place.scope, own?.tokens, `${place.where}.tokens`, place.forward)
  if (budget === null) return null
  let failureLogged = false
  return new TokenRoute(budget, {
    keyGenerator: own?.keyGenerator ?? options.keyGenerator,
    callbacks,
    headers: engine.headers,
    openaiHeaders: tokens.openaiHeaders,
    defaultMaxTokens: tokens.defaultMaxTokens,
    onSettled: options.onTokensSettled,
    rejected:
      place.events?.tokensRejected === undefined
        ? undefined
        : (reservation) => place.events?.tokensRejected?.(place.scope, reservation),
    storeFailed: (error) => {
      if (failureLogged) return
      failureLogged = true
      const reason = error instanceof Error ? error.message : String(error)
      logger.warn(
        `tollgate: the token store failed (${reason}); such requests get a 500. Later failures are not logged.`,
      )
    },
  })
}
