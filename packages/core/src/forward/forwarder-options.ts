import type { Balancer } from '../balance/types.js'
import { UserCallbacks } from '../user-callback.js'
import { checkNumber, checkOptionalFunction, checkOptionGroup, fail, failWith } from '../validation.js'
import { DEFAULT_FAILOVER_POLICY, type FailoverPolicy } from './failover-policy.js'
import { compilePathRewrite, type PathRewrite } from './request-target.js'
import { RetryBudget, type RetryBudgetOptions } from './retry-budget.js'
import { type UpstreamPoolOptions, UpstreamPools } from './upstream-pools.js'

export interface ForwarderOptions extends UpstreamPoolOptions {
  balancer: Balancer
  /**
   * Pools to share between forwarders (one forwarder per route, one set of connections). When
   * given, the timeout options belong to it, and `close()` leaves it open for its owner.
   */
  pools?: UpstreamPools
  /** Attempts per request, the first included. Default 3. */
  maxAttempts?: number
  /** Shared cap on retries across requests; `false` leaves only `maxAttempts`. Default `{ ratio: 0.2, minRetriesPerSecond: 10, windowSeconds: 10 }`. */
  retryBudget?: RetryBudgetOptions | RetryBudget | false
  /** Bodies up to this size are buffered so a failed attempt can be replayed; larger ones stream, without retry. Default 1 MiB. */
  maxReplayBodyBytes?: number
  /** Bodies above this get 413. Default 10 MiB; `Infinity` for no limit. */
  maxBodyBytes?: number
  /**
   * How long a client may take to send its whole request body; past it the request gets 408 and
   * any upstream request is cut, so a slow uploader cannot hold a backend's slot. Default 60 000 ms;
   * `Infinity` for no deadline.
   */
  uploadTimeoutMs?: number
  /** Path rewrite for every request (a request's own `rewrite` wins). */
  rewrite?: PathRewrite
  /**
   * A response header set to the id of the backend that answered (e.g. `'x-tollgate-backend'`),
   * for debugging and for clients that pin a session. Default none: backend ids stay private.
   */
  backendHeader?: string
  /** Sees what should never happen (a balancer throwing something other than a `BalancerError`, a `finish` that throws); for logging. */
  onUnexpectedError?: (error: unknown) => void
  /** The guard user functions (`rewrite`, `onUnexpectedError`) are called through; default one logging to the console. */
  callbacks?: UserCallbacks
}

/** `ForwarderOptions` checked, with their defaults filled in. */
export interface ForwarderSettings {
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
}

const POOL_OPTION_NAMES = [
  'connectTimeoutMs',
  'firstByteTimeoutMs',
  'idleTimeoutMs',
  'keepAliveTimeoutMs',
  'connectionsPerBackend',
] as const

// setTimeout turns anything above 2^31-1 ms into 1 ms.
const MAX_TIMER_MS = 2_147_483_647

/** Checks every option now, so bad configuration fails at startup naming the option. */
export function resolveForwarderOptions(options: ForwarderOptions): ForwarderSettings {
  if (typeof options?.balancer?.acquire !== 'function') {
    failWith('balancer', 'is required: an object with acquire(ctx, exclude, signal)')
  }
  const maxAttempts = checkNumber('maxAttempts', options.maxAttempts, 3, { integer: true, min: 1 })
  const maxReplayBodyBytes = checkNumber('maxReplayBodyBytes', options.maxReplayBodyBytes, 1024 * 1024, {
    integer: true,
    min: 0,
  })
  const maxBodyBytes = checkNumber('maxBodyBytes', options.maxBodyBytes, 10 * 1024 * 1024, {
    integer: true,
    min: 1,
    infinity: true,
  })
  const uploadTimeoutMs = checkNumber('uploadTimeoutMs', options.uploadTimeoutMs, 60_000, {
    integer: true,
    min: 1,
    infinity: true,
  })
  if (uploadTimeoutMs > MAX_TIMER_MS && uploadTimeoutMs !== Number.POSITIVE_INFINITY) {
    failWith('uploadTimeoutMs', `must be at most ${MAX_TIMER_MS} ms or Infinity; got ${uploadTimeoutMs}`)
  }
  const budget = options.retryBudget
  if (!(budget instanceof RetryBudget)) {
    checkOptionGroup('retryBudget', budget, ['ratio', 'minRetriesPerSecond', 'windowSeconds'], true)
  }
  checkOptionalFunction('onUnexpectedError', options.onUnexpectedError)
  const backendHeader = options.backendHeader
  if (
    backendHeader !== undefined &&
    (typeof backendHeader !== 'string' ||
      !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(backendHeader) ||
      /^(content-|transfer-encoding$|connection$|keep-alive$|upgrade$|trailer$|set-cookie$)/i.test(
        backendHeader,
      ))
  ) {
    fail(
      'backendHeader',
      "a response header name of your own such as 'x-tollgate-backend' (not one HTTP itself uses)",
      backendHeader,
    )
  }
  const retryBudget =
    budget === false ? null : budget instanceof RetryBudget ? budget : new RetryBudget(budget)
  const rewrite = options.rewrite === undefined ? undefined : compilePathRewrite(options.rewrite)
  // Last, so that no check fails after pools exist.
  let pools: UpstreamPools
  if (options.pools !== undefined) {
    const misplaced = POOL_OPTION_NAMES.find((name) => options[name] !== undefined)
    if (misplaced !== undefined) {
      failWith(misplaced, 'belongs to the shared UpstreamPools passed as "pools", not next to it')
    }
    pools = options.pools
  } else {
    pools = new UpstreamPools(options)
  }
  return {
    balancer: options.balancer,
    pools,
    ownsPools: options.pools === undefined,
    budget: retryBudget,
    maxAttempts,
    maxReplayBodyBytes,
    maxBodyBytes,
    uploadTimeoutMs,
    rewrite,
    backendHeader: backendHeader?.toLowerCase(),
    onUnexpectedError: options.onUnexpectedError,
    callbacks: options.callbacks ?? new UserCallbacks(console),
    policy: DEFAULT_FAILOVER_POLICY,
  }
}
