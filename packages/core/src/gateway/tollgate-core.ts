import type { Logger } from '../limits/insured-store.js'
import { LimitEngine } from '../limits/limit-engine.js'
import type { RateLimitOptions, RouteLimitSpec } from '../limits/options.js'
import type { LimitStore } from '../limits/store.js'
import { TokenEngine } from '../limits/tokens/token-engine.js'
import { OBSERVE_OPTION_NAMES, Observability, type ObserveOptions } from '../observe/observability.js'
import type { PrometheusMetrics } from '../observe/prometheus-metrics.js'
import { UserCallbacks } from '../user-callback.js'
import { fail } from '../validation.js'
import type { BackendsHandle } from './backends-handle.js'
import { ForwardingGateway } from './gateway.js'
import { GATEWAY_OPTION_NAMES, type GatewayOptions, pickGatewayOptions } from './gateway-options.js'
import { LimitedRoute } from './limited-route.js'
import type { TokenRoute } from './token-route.js'
import { tokenRouteFor } from './token-route-factory.js'

/** What an adapter says about itself when it creates its core. */
export interface AdapterSetup {
  /** Where warnings go unless the options name a `logger`: Fastify's `app.log`, `console` for Express. */
  logger: Logger
  /** Option names the adapter adds to the shared ones (Fastify's `hook`), for the unknown-option check. */
  optionNames?: readonly string[]
  /** How backends are configured in this framework, for the error of a call that needs them. */
  backendsExample: string
}

/** The OpenAI `GET /v1/models` answer. */
export interface ModelList {
  object: 'list'
  data: { id: string; object: 'model'; owned_by: string }[]
}

/**
 * Everything of tollgate that does not depend on the framework, created once per plugin
 * registration or `tollgate()` call: the options checked in one pass, the limit engine and, with
 * `backends`, the forwarding gateway, and their close order. The adapters translate between
 * their framework and this object and decide nothing themselves.
 */
export class TollgateCore<Req> {
  readonly callbacks: UserCallbacks
  readonly #engine: LimitEngine<Req>
  readonly #tokens: TokenEngine<Req>
  readonly #options: RateLimitOptions<Req>
  readonly #logger: Logger
  readonly #gateway: ForwardingGateway<Req> | undefined
  readonly #backendsExample: string
  readonly #observability: Observability
  #closing: Promise<void> | undefined

  constructor(options: RateLimitOptions<Req> & GatewayOptions<Req> & ObserveOptions, setup: AdapterSetup) {
    // The engine checks the option object and every name in it, so it comes first and a bad option
    // leaves nothing open behind it.
    this.#engine = new LimitEngine<Req>(options, setup.logger, [
      ...GATEWAY_OPTION_NAMES,
      ...OBSERVE_OPTION_NAMES,
      ...(setup.optionNames ?? []),
    ])
    const logger = options.logger ?? setup.logger
    this.callbacks = new UserCallbacks(logger)
    this.#options = options
    this.#logger = logger
    try {
      this.#tokens = new TokenEngine<Req>(options, this.#engine.keyPrefix, this.#logger)
    } catch (error) {
      void this.#engine.close()
      throw error
    }
    this.#backendsExample = setup.backendsExample
    try {
      this.#observability = new Observability(options, logger)
      this.#gateway =
        options.backends === undefined
          ? undefined
          : new ForwardingGateway(
              withRoutingPrefix(pickGatewayOptions<Req>(options), this.#engine.keyPrefix),
              this.callbacks,
              this.#observability,
              options.keyGenerator,
            )
    } catch (error) {
      void this.#engine.close()
      throw error
    }
  }

  /** The counter store in use (memory, Redis with insurance, or the one passed in). */
  get store(): LimitStore {
    return this.#engine.store
  }

  /** Whether routes without limits of their own are limited (`defaultLimits` or `applicationLimits`). */
  get hasDefaults(): boolean {
    return this.#engine.hasDefaults
  }

  /** Largest body a forward route accepts; 0 without backends. */
  get maxBodyBytes(): number {
    return this.#gateway?.maxBodyBytes ?? 0
  }

  get hasBackends(): boolean {
    return this.#gateway !== undefined
  }

  /**
   * The limiter of one route, or null when nothing limits it. `scope` names its counters;
   * `where` names the route's setting in errors.
   */
  limitRoute(scope: string, spec: RouteLimitSpec<Req> | undefined, where: string): LimitedRoute<Req> | null {
    const limit = this.#engine.routeFor(scope, spec, where)
    if (limit === null) return null
    const observability = this.#observability
    return new LimitedRoute(limit, observability.decisions ? observability.events : undefined, scope)
  }

  /** The Prometheus metrics, or an option error naming `what` needed them. */
  metrics(what: string): PrometheusMetrics {
    const metrics = this.#observability.metrics
    if (metrics === undefined) fail('metrics', `set (e.g. metrics: true) for ${what}`, undefined)
    return metrics
  }

  /**
   * The token budget of one route, or null when none applies: its own `tokens`, else, on a forward
   * route, `defaultTokens`. `where` names the route's setting in errors.
   */
  tokenRoute(
    spec: RouteLimitSpec<Req> | undefined,
    scope: string,
    where: string,
    forward: boolean,
  ): TokenRoute<Req> | null {
    return tokenRouteFor(this.#tokens, this.#options, this.#engine, this.callbacks, this.#logger, {
      spec,
      scope,
      where,
      forward,
      events: this.#observability.decisions ? this.#observability.events : undefined,
    })
  }

  /** The forwarding gateway, or an option error naming `what` needed it. */
  gateway(what: string): ForwardingGateway<Req> {
    if (this.#gateway === undefined)
      fail('backends', `set for ${what}, e.g. ${this.#backendsExample}`, undefined)
    return this.#gateway
  }

  /** Add, remove, drain backends at runtime and read their state. */
  backends(what: string): BackendsHandle {
    return this.gateway(what).backends
  }

  /**
   * The `GET /v1/models` answer from the registry when backends declare their models; undefined
   * when none do, and the request should be forwarded to a backend instead.
   */
  modelList(): ModelList | undefined {
    const gateway = this.#gateway
    return gateway?.routesByModel ? gateway.modelList() : undefined
  }

  /**
   * Starts the gateway's shutdown (new forwards get 503, the deadline for in-flight ones starts)
   * without waiting: Fastify closes its server before plugins' onClose hooks run, and a long
   * stream would otherwise hold that close open with no deadline running.
   */
  beginClose(): void {
    this.#gateway?.close().catch(() => {})
  }

  /**
   * Closes the gateway (in-flight requests finish within `shutdownTimeoutMs`), then the limit
   * store, which requests still finishing may use. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown()
    return this.#closing
  }

  async #shutDown(): Promise<void> {
    await this.#gateway?.close()
    await this.#tokens.close()
    await this.#engine.close()
  }
}

/** Replicas that share a `keyPrefix` share their routing state under it, unless it names its own. */
function withRoutingPrefix<Req>(options: GatewayOptions<Req>, keyPrefix: string): GatewayOptions<Req> {
  const routing = options.routingState
  if (routing === undefined || routing === null || typeof routing !== 'object' || 'prefix' in routing)
    return options
  return { ...options, routingState: { ...routing, prefix: keyPrefix } }
}
