import type { Balancer } from '../balance/types.js'
import type { UserCallbacks } from '../user-callback.js'
import { Exchange, type ExchangeHost } from './exchange.js'
import type { FailoverPolicy } from './failover-policy.js'
import { type ForwarderOptions, resolveForwarderOptions } from './forwarder-options.js'
import type { RetryBudget } from './retry-budget.js'
import type { Forwarder, ForwardRequest } from './types.js'
import type { UpstreamPools } from './upstream-pools.js'

export type { ForwarderOptions } from './forwarder-options.js'
export type { Forwarder, ForwardObserver, ForwardRequest } from './types.js'

/**
 * The forwarder: settings shared by every request, and shutdown. Each request is an `Exchange`.
 * Shutdown is graceful first (pools close after their in-flight requests, and client connections
 * end with their responses), then, on `destroy()`, immediate.
 */
class HttpForwarder implements Forwarder, ExchangeHost {
  readonly balancer: Balancer
  readonly pools: UpstreamPools
  readonly ownsPools: boolean
  readonly budget: RetryBudget | null
  readonly maxAttempts: number
  readonly maxReplayBodyBytes: number
  readonly maxBodyBytes: number
  readonly uploadTimeoutMs: number
  readonly rewrite: ((path: string) => string) | undefined
  readonly backendHeader: string | undefined
  readonly onUnexpectedError: ((error: unknown) => void) | undefined
  readonly callbacks: UserCallbacks
  readonly policy: FailoverPolicy
  shuttingDown = false

  constructor(options: ForwarderOptions) {
    const settings = resolveForwarderOptions(options)
    this.balancer = settings.balancer
    this.pools = settings.pools
    this.ownsPools = settings.ownsPools
    this.budget = settings.budget
    this.maxAttempts = settings.maxAttempts
    this.maxReplayBodyBytes = settings.maxReplayBodyBytes
    this.maxBodyBytes = settings.maxBodyBytes
    this.uploadTimeoutMs = settings.uploadTimeoutMs
    this.rewrite = settings.rewrite
    this.backendHeader = settings.backendHeader
    this.onUnexpectedError = settings.onUnexpectedError
    this.callbacks = settings.callbacks
    this.policy = settings.policy
  }

  forward(input: ForwardRequest): Promise<void> {
    return new Exchange(this, input).start()
  }

  closeFor(backendId: string): Promise<void> {
    return this.pools.closeFor(backendId)
  }

  close(): Promise<void> {
    this.shuttingDown = true
    return this.ownsPools ? this.pools.close() : Promise.resolve()
  }

  destroy(): Promise<void> {
    this.shuttingDown = true
    return this.ownsPools ? this.pools.destroy() : Promise.resolve()
  }
}

/** A forwarder over undici: validates `options` now, so bad configuration fails at startup. */
export function createForwarder(options: ForwarderOptions): Forwarder {
  return new HttpForwarder(options)
}
