import type { IncomingHttpHeaders } from 'node:http'
import { BackendBalancer } from '../balance/balancer.js'
import { sendJsonError } from '../forward/errors.js'
import { createForwarder, type Forwarder, type ForwardRequest } from '../forward/forwarder.js'
import { compilePathRewrite } from '../forward/request-target.js'
import type { GatewayEvents } from '../observe/events.js'
import type { Observability } from '../observe/observability.js'
import { CALLBACK_FAILED, type UserCallbacks } from '../user-callback.js'
import { checkKnownKeys, fail, isPlainObject } from '../validation.js'
import { BackendsHandle } from './backends-handle.js'
import {
  FORWARD_OPTION_NAMES,
  type ForwardOptions,
  GATEWAY_OPTION_NAMES,
  type GatewayOptions,
  type HashKeySource,
} from './gateway-options.js'
import { promptTextOf } from './prompt-text.js'

/** What an adapter needs to forward one request, prepared once per route. */
export interface ForwardRoute<Req> {
  rewrite: ((path: string) => string) | undefined
  /** The prompt text the strategy reads (`prefix-affinity`) from the body's prompt field; undefined when no strategy does. */
  prompt: ((body: unknown) => string | undefined) | undefined
  hashKey: ((request: Req, headers: IncomingHttpHeaders) => string | undefined) | undefined
}

/**
 * One request to forward, in framework-neutral fields: everything an adapter knows that core
 * cannot (the trust-proxy result, the original URL, bytes a body parser already read). Model,
 * hash key and rewrite are the gateway's to fill in.
 */
export interface GatewayRequest<Req>
  extends Omit<ForwardRequest, 'model' | 'hashKey' | 'rewrite' | 'readModel'> {
  /** The framework's request object, handed to a `hashKey` function. */
  request: Req
}

/**
 * The balancing half of tollgate, framework-agnostic: one balancer and one
 * forwarder (one connection pool per backend) shared by every forward route.
 */
export class ForwardingGateway<Req> {
  readonly balancer: BackendBalancer
  readonly forwarder: Forwarder
  readonly backends: BackendsHandle
  /** Bodies above this get 413, whoever reads them. */
  readonly maxBodyBytes: number
  readonly #hashKey: HashKeySource<Req> | undefined
  readonly #hashing: boolean
  readonly #shutdownTimeoutMs: number
  readonly #callbacks: UserCallbacks
  /** Set only when something observes each request (metrics, tracing, access log). */
  readonly #requestEvents: GatewayEvents | undefined
  #closing: Promise<void> | undefined

  /**
   * `callbacks` guards the user's functions among the options (custom picker, `hashKey`, `rewrite`,
   * `onUnexpectedError`); `clientKey`, the plugin-wide keyGenerator, is the default fairness tenant.
   */
  constructor(
    options: GatewayOptions<Req>,
    callbacks: UserCallbacks,
    observability?: Observability,
    clientKey?: (request: Req) => unknown,
  ) {
    const {
      backends,
      strategy,
      consistentHash,
      prefixAffinity,
      precisePrefix,
      loadReports,
      loraAffinity,
      zone,
      zonePreference,
      health,
      queue,
      fairness,
      latencyDecayMs,
      failurePenaltyMs,
      routingState,
      hashKey,
      shutdownTimeoutMs,
      ...forwarding
    } = options
    checkHashKey('hashKey', hashKey)
    this.#shutdownTimeoutMs = checkShutdownTimeout(shutdownTimeoutMs)
    this.#callbacks = callbacks
    this.balancer = new BackendBalancer({
      backends,
      strategy,
      consistentHash,
      prefixAffinity,
      precisePrefix,
      loadReports,
      loraAffinity,
      zone,
      zonePreference,
      health,
      queue,
      fairness,
      clientKey,
      latencyDecayMs,
      failurePenaltyMs,
      routingState,
      callbacks,
      events: observability?.events,
    })
    observability?.attach(this.balancer)
    this.#requestEvents = observability?.perRequest ? observability.events : undefined
    try {
      this.forwarder = createForwarder({ ...forwarding, balancer: this.balancer, callbacks: this.#callbacks })
    } catch (error) {
      void this.balancer.close()
      throw error
    }
    this.backends = new BackendsHandle(this.balancer, this.forwarder)
    this.maxBodyBytes = this.forwarder.maxBodyBytes
    this.#hashKey = hashKey ?? 'x-session-id'
    // Only key-aware pickers look at the hash key; others skip computing it.
    this.#hashing = strategy === 'consistent-hash' || typeof strategy === 'function'
  }

  /** Validates a route's forward options once, when the route is declared. */
  route(options: ForwardOptions<Req> = {}): ForwardRoute<Req> {
    const raw: unknown = options
    if (!isPlainObject(raw)) fail('forward()', 'an object with any of rewrite, hashKey', raw)
    checkKnownKeys('forward()', raw, FORWARD_OPTION_NAMES)
    checkHashKey('forward().hashKey', options.hashKey)
    const source = options.hashKey ?? (this.#hashing ? this.#hashKey : undefined)
    const promptChars = this.balancer.promptChars
    return {
      rewrite:
        options.rewrite === undefined ? undefined : compilePathRewrite(options.rewrite, 'forward().rewrite'),
      prompt: promptChars > 0 ? (body) => promptTextOf(body, promptChars) : undefined,
      hashKey: hashKeyReader(source),
    }
  }

  /**
   * Forwards one request on `route` and answers it: the backend's response, or a JSON error
   * (400/413/408 for a bad body, 500 when the route's `hashKey` function throws, 502/503/504
   * when no backend answered). The body is read here unless a framework parser already did.
   * Resolves once the response is over; never rejects.
   */
  forward(route: ForwardRoute<Req>, request: GatewayRequest<Req>): Promise<void> {
    const input = request as ForwardRequest & GatewayRequest<Req>
    if (route.hashKey !== undefined) {
      const key = this.#callbacks.call('hashKey', route.hashKey, request.request, request.req.headers)
      if (key === CALLBACK_FAILED) {
        sendJsonError(request.req, request.res, 500, 'internal_error', 'the hashKey function failed')
        return Promise.resolve()
      }
      input.hashKey = typeof key === 'string' ? key : undefined
    }
    input.rewrite = route.rewrite
    // LoRA affinity reads `model` even when no backend declares models (each then serves any).
    input.readModel = this.routesByModel || this.balancer.loraAffinity !== null
    input.readPrompt = route.prompt
    const events = this.#requestEvents?.forwardStart(input)
    if (events === undefined) return this.forwarder.forward(input)
    input.events = events
    const res = input.res
    return this.forwarder.forward(input).then(() => {
      // forward() never rejects, and a consumer's failure must not make it start.
      try {
        input.observer?.reportTokens?.(events)
        events.end(res.statusCode, res.writableFinished)
      } catch {}
    })
  }

  /**
   * Whether backends declare models, so a request's `model` field picks among them. Asked per
   * request, so it reads a count instead of copying the model list.
   */
  get routesByModel(): boolean {
    return this.balancer.registry.declaresModels
  }

  /** The OpenAI `GET /v1/models` answer, from the models the backends declare. */
  modelList(): { object: 'list'; data: { id: string; object: 'model'; owned_by: string }[] } {
    return {
      object: 'list',
      data: this.balancer.models().map((id) => ({ id, object: 'model', owned_by: 'tollgate' })),
    }
  }

  /**
   * Stops handing out backends (requests still waiting for capacity get 503) and health-check
   * timers, lets in-flight requests finish for up to `shutdownTimeoutMs`, then cuts what is
   * left (a cut event stream ends with an SSE error event) and closes every connection.
   * Resolves once everything is closed; calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown()
    return this.#closing
  }

  async #shutDown(): Promise<void> {
    await this.balancer.close()
    const drained = this.forwarder.close()
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(resolve, this.#shutdownTimeoutMs, 'deadline')
    })
    try {
      if ((await Promise.race([drained, deadline])) === 'deadline') await this.forwarder.destroy()
      await drained
    } finally {
      clearTimeout(timer)
    }
  }
}

// setTimeout turns anything above 2^31-1 ms into 1 ms, which would cut every stream at once.
const MAX_TIMER_MS = 2_147_483_647

function checkShutdownTimeout(value: unknown): number {
  if (value === undefined) return 10_000
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TIMER_MS) {
    fail('shutdownTimeoutMs', `a whole number of milliseconds from 0 to ${MAX_TIMER_MS}`, value)
  }
  return value
}

function checkHashKey(option: string, value: unknown): void {
  if (value === undefined || typeof value === 'function') return
  if (typeof value !== 'string' || value === '')
    fail(option, 'a header name or a function of the request', value)
}

function hashKeyReader<Req>(source: HashKeySource<Req> | undefined): ForwardRoute<Req>['hashKey'] {
  if (source === undefined) return undefined
  if (typeof source === 'function') return (request) => source(request)
  const header = source.toLowerCase()
  return (_request, headers) => {
    const value = headers[header]
    return Array.isArray(value) ? value[0] : value
  }
}

/** @deprecated the old name of `ForwardingGateway`. */
export { ForwardingGateway as Gateway, GATEWAY_OPTION_NAMES }
