import type { IncomingHttpHeaders } from 'node:http'
import { BackendBalancer } from '../balance/balancer.js'
import { createForwarder, type Forwarder } from '../forward/forwarder.js'
import { compilePathRewrite } from '../forward/request-target.js'
import { checkKnownKeys } from '../limits/validation.js'
import { BackendsHandle } from './backends-handle.js'
import {
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
 * The balancing half of tollgate, framework-agnostic: one balancer and one
 * forwarder (one connection pool per backend) shared by every forward route.
 */
export class Gateway<Req> {
  readonly balancer: BackendBalancer
  readonly forwarder: Forwarder
  readonly backends: BackendsHandle
  /** Bodies above this get 413, whoever reads them. */
  readonly maxBodyBytes: number
  readonly #hashKey: HashKeySource<Req> | undefined
  readonly #hashing: boolean

  constructor(options: GatewayOptions<Req>) {
    const {
      backends,
      strategy,
      consistentHash,
      health,
      queue,
      latencyDecayMs,
      failurePenaltyMs,
      hashKey,
      ...forwarding
    } = options
    checkHashKey('hashKey', hashKey)
    this.balancer = new BackendBalancer({
      backends,
      strategy,
      consistentHash,
      health,
      queue,
      latencyDecayMs,
      failurePenaltyMs,
    })
    try {
      this.forwarder = createForwarder({ ...forwarding, balancer: this.balancer })
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
    if (raw === null || typeof raw !== 'object') {
      throw new TypeError(`tollgate: forward() options must be an object; got ${JSON.stringify(raw)}`)
    }
    checkKnownKeys('forward()', raw as Record<string, unknown>, ['rewrite', 'hashKey'])
    checkHashKey('forward().hashKey', options.hashKey)
    const source = options.hashKey ?? (this.#hashing ? this.#hashKey : undefined)
    return {
      rewrite: options.rewrite === undefined ? undefined : compilePathRewrite(options.rewrite),
      hashKey: hashKeyReader(source),
    }
  }

  /** The OpenAI `GET /v1/models` answer, from the models the backends declare. */
  modelList(): { object: 'list'; data: { id: string; object: 'model'; owned_by: string }[] } {
    return {
      object: 'list',
      data: this.balancer.models().map((id) => ({ id, object: 'model', owned_by: 'tollgate' })),
    }
  }

  /** Waits for in-flight requests, then closes connections and health-check timers. */
  async close(): Promise<void> {
    await this.balancer.close()
    await this.forwarder.close()
  }
}

function checkHashKey(option: string, value: unknown): void {
  if (value === undefined || typeof value === 'function') return
  if (typeof value !== 'string' || value === '') {
    throw new TypeError(
      `tollgate: option "${option}" must be a header name or a function of the request; got ${JSON.stringify(value)}`,
    )
  }
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

export { GATEWAY_OPTION_NAMES }
