import type { IncomingHttpHeaders } from 'node:http'
import { BackendBalancer } from '../balance/balancer.js'
import { createForwarder, type Forwarder } from '../forward/forwarder.js'
import { compilePathRewrite } from '../forward/request-target.js'
import type { UserCallbacks } from '../user-callback.js'
import { checkKnownKeys, checkOptionalFunction, fail } from '../validation.js'
import { BackendsHandle } from './backends-handle.js'
import {
  FORWARD_OPTION_NAMES,
  type ForwardOptions,
  GATEWAY_OPTION_NAMES,
  type GatewayOptions,
  type HashKeySource,
} from './gateway-options.js'

/** What an adapter needs to forward one request, prepared once per route. */
export interface ForwardRoute<Req> {
  rewrite: ((path: string) => string) | undefined
  hashKey: ((request: Req, headers: IncomingHttpHeaders) => string | undefined) | undefined
}

/**
 * The forwarding half of tollgate, framework-agnostic: one balancer and one forwarder (one
 * connection pool per backend) shared by every forward route, and their shutdown.
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
  #closing: Promise<void> | undefined

  /** `callbacks` guards the user's functions among the options (custom picker, onUnexpectedError). */
  constructor(options: GatewayOptions<Req>, callbacks: UserCallbacks) {
    const {
      backends,
      strategy,
      consistentHash,
      health,
      queue,
      fairness,
      latencyDecayMs,
      failurePenaltyMs,
      hashKey,
      shutdownTimeoutMs,
      onUnexpectedError,
      ...forwarding
    } = options
    checkHashKey('hashKey', hashKey)
    checkOptionalFunction('onUnexpectedError', onUnexpectedError)
    this.#shutdownTimeoutMs = checkShutdownTimeout(shutdownTimeoutMs)
    this.balancer = new BackendBalancer({
      backends,
      strategy,
      consistentHash,
      health,
      queue,
      fairness,
      latencyDecayMs,
      failurePenaltyMs,
      callbacks,
    })
    try {
      this.forwarder = createForwarder({
        ...forwarding,
        balancer: this.balancer,
        onUnexpectedError:
          onUnexpectedError &&
          ((error: unknown) => callbacks.notify('onUnexpectedError', onUnexpectedError, error)),
      })
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
    if (raw === null || typeof raw !== 'object') fail('forward()', 'an object { rewrite?, hashKey? }', raw)
    checkKnownKeys('forward()', raw, FORWARD_OPTION_NAMES)
    checkHashKey('forward().hashKey', options.hashKey)
    const source = options.hashKey ?? (this.#hashing ? this.#hashKey : undefined)
    return {
      rewrite: options.rewrite === undefined ? undefined : compilePathRewrite(options.rewrite),
      hashKey: hashKeyReader(source),
    }
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

/** The `model` field of a parsed JSON body, if it has one. */
export function modelOf(body: unknown): string | undefined {
  if (body === null || typeof body !== 'object') return undefined
  const model = (body as { model?: unknown }).model
  return typeof model === 'string' ? model : undefined
}

/** @deprecated the old name of `ForwardingGateway`. */
export { ForwardingGateway as Gateway, GATEWAY_OPTION_NAMES }
