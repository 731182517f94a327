import { checkNumber } from '../validation.js'

export interface RetryBudgetOptions {
  /** Retries may add at most this share on top of the requests seen in the window. Default 0.2. */
  ratio?: number
  /** Retries always allowed per second regardless of traffic, so a quiet gateway can still fail over. Default 10. */
  minRetriesPerSecond?: number
  /** Length of the sliding window in seconds. Default 10. */
  windowSeconds?: number
}

/**
 * Finagle/Envoy-style retry budget: over a sliding window, retries may not exceed
 * `minRetriesPerSecond × windowSeconds + ratio × requests`. When every backend is failing this
 * caps the extra load retries add (a retry storm) at ~20 % instead of `maxAttempts ×`.
 *
 * The window is a ring of one-second buckets, advanced lazily on use: O(1) per call, no timers.
 */
export class RetryBudget {
  private readonly ratio: number
  private readonly reserve: number
  private readonly windowSeconds: number
  private readonly requests: number[]
  private readonly retries: number[]
  private requestsInWindow = 0
  private retriesInWindow = 0
  private second = 0

  constructor(
    options: RetryBudgetOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    const ratio = checkNumber('retryBudget.ratio', options.ratio, 0.2, { min: 0 })
    const minRetriesPerSecond = checkNumber(
      'retryBudget.minRetriesPerSecond',
      options.minRetriesPerSecond,
      10,
      { min: 0 },
    )
    const windowSeconds = checkNumber('retryBudget.windowSeconds', options.windowSeconds, 10, {
      integer: true,
      min: 1,
    })
    this.ratio = ratio
    this.reserve = minRetriesPerSecond * windowSeconds
    this.windowSeconds = windowSeconds
    this.requests = new Array<number>(windowSeconds).fill(0)
    this.retries = new Array<number>(windowSeconds).fill(0)
    this.second = Math.floor(this.now() / 1000)
  }

  /** Counts one client request (not its retries). */
  recordRequest(): void {
    this.advance()
    this.requests[this.second % this.windowSeconds]! += 1
    this.requestsInWindow += 1
  }

  /** Takes one retry from the budget; false when the budget is spent. */
  tryRetry(): boolean {
    this.advance()
    if (this.retriesInWindow + 1 > this.reserve + this.ratio * this.requestsInWindow) return false
    this.retries[this.second % this.windowSeconds]! += 1
    this.retriesInWindow += 1
    return true
  }

  private advance(): void {
    const second = Math.floor(this.now() / 1000)
    if (second <= this.second) return
    const steps = Math.min(second - this.second, this.windowSeconds)
    for (let step = 1; step <= steps; step++) {
      const slot = (this.second + step) % this.windowSeconds
      this.requestsInWindow -= this.requests[slot]!
      this.retriesInWindow -= this.retries[slot]!
      this.requests[slot] = 0
      this.retries[slot] = 0
    }
    this.second = second
  }
}
