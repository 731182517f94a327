import type { Logger } from '../../limits/insured-store.js'
import type { RedisClientLike } from '../../limits/redis-client.js'
import { optionNames } from '../../option-names.js'
import type { BackendState } from '../backend-state.js'

/** `routingState`: where the state routing decides by lives when several gateway replicas share it. */
export interface RoutingStateOptions {
  /** An `ioredis` or `redis` client every replica reaches; the gateway never closes it. */
  redis: RedisClientLike
  /** Prepended to every key. Default: the limits' `keyPrefix` (`tollgate:`); replicas that route as one share it. */
  prefix?: string
  /** How long a request waits for Redis before it is routed on this replica's own state. Default 100 ms. */
  timeoutMs?: number
  /** How long a replica's requests stay counted after it stops renewing them (killed). Default 5 000 ms. */
  leaseTtlMs?: number
  /** How often a replica renews its leases and reads the others' counts. Default 1 000 ms. */
  heartbeatMs?: number
  /** Prefix blocks not sent to a backend for this long are forgotten. Default 600 000 ms (10 minutes). */
  prefixTtlMs?: number
}

export const ROUTING_STATE_OPTION_NAMES = optionNames<RoutingStateOptions>()([
  'redis',
  'prefix',
  'timeoutMs',
  'leaseTtlMs',
  'heartbeatMs',
  'prefixTtlMs',
])

/** The prompt blocks of the request being routed, and what the shared index says of them. */
export interface PromptBlocks {
  readonly hashes: Float64Array
  count: number
  /** The hashes as the scripts take them: decimal, separated by spaces. */
  readonly text: string
  /** Per candidate (in the order given to `view`): leading blocks held, and held as home. */
  readonly matched: Int32Array
  readonly homes: Int32Array
}

/**
 * What a balancer's routing decisions read and write beyond one request: the other replicas'
 * requests in flight and sent per backend (folded into each `BackendState`), capacity leases, and
 * the prefix index. Two implementations: this process alone (`LocalRoutingState`), or every
 * replica through Redis (`RedisRoutingState`). While `shared` is false a balancer routes on its
 * own state synchronously, as without the option.
 */
export interface RoutingState {
  /** Whether picks go through the shared state now; false without it, or while it is unreachable. */
  readonly shared: boolean
  /**
   * Refreshes the candidates' counts and reads the shared prefix index for `blocks` (filling its
   * `matched` and `homes`). Resolves true when answered, false when it fell back; never rejects.
   */
  view(candidates: readonly BackendState[], blocks: PromptBlocks | undefined): Promise<boolean>
  /**
   * Takes a request's place at `backend` across replicas and records its blocks there. Resolves
   * false only when the backend is at `maxConcurrency` across replicas; true when taken, or when
   * the shared state could not answer (the request is then counted by this replica alone).
   * Without `maxConcurrency` nothing waits: it answers true at once and counts in the background.
   */
  claim(
    backend: BackendState,
    candidates: readonly BackendState[],
    blocks: PromptBlocks | undefined,
    home: boolean,
  ): true | Promise<boolean>
  /** Ends one of this replica's requests at `backend`. */
  release(backend: BackendState): void
  /** A request waits for capacity: the others' counts should be read again soon, and often while any waits. */
  waiting(): void
  close(): Promise<void>
}

/** Routing on this process's own state: nothing shared, nothing waited for. */
export class LocalRoutingState implements RoutingState {
  readonly shared = false
  view(): Promise<boolean> {
    return Promise.resolve(false)
  }
  claim(): true {
    return true
  }
  release(): void {}
  waiting(): void {}
  async close(): Promise<void> {}
}

/** What a shared routing state needs from the balancer that owns it. */
export interface RoutingStateOwner {
  backends(): Iterable<BackendState>
  /** Others' counts went down, or the state changed mode: waiters may be served now. */
  changed(): void
  /** Whether requests wait for capacity now. */
  waiting(): boolean
  logger: Logger
}
