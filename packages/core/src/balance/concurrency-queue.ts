import { optionNames } from '../option-names.js'
import { checkNumber } from '../validation.js'
import { BalancerError } from './errors.js'

export interface ConcurrencyQueueOptions {
  /** Requests that may wait at once when every backend is at maxConcurrency; 0 disables waiting. Default 100. */
  size?: number
  /** Longest wait before the request fails with 503. Default 30 000 ms. */
  timeoutMs?: number
  /** Retry-After suggested to a client turned away because the queue is full or timed out. Default 1 000 ms. */
  retryAfterMs?: number
}

export const QUEUE_OPTION_NAMES = optionNames<ConcurrencyQueueOptions>()([
  'size',
  'timeoutMs',
  'retryAfterMs',
])

/** What a waiter's attempt returns while everything it could use is still full. */
export const STILL_FULL: unique symbol = Symbol('still full')

/**
 * One waiting request. `attempt` tries to serve it now: it returns the result, returns
 * STILL_FULL to keep waiting, or throws to fail the request (e.g. its backends were removed).
 */
interface Waiter<T> {
  attempt: () => T | typeof STILL_FULL
  resolve: (value: T) => void
  reject: (error: unknown) => void
  leave: (() => void) | undefined
  timer: NodeJS.Timeout | undefined
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

/**
 * The bounded FIFO where requests wait when every candidate backend is at maxConcurrency, so a
 * full GPU server is not sent more than it can batch. Waiters are tried in arrival order
 * whenever capacity may have appeared; one that still cannot be served (it wants another model)
 * does not block those behind it.
 */
export class ConcurrencyQueue<T> {
  readonly size: number
  readonly timeoutMs: number
  readonly retryAfterMs: number
  #waiters: Waiter<T>[] = []
  #waking = false

  constructor(options: ConcurrencyQueueOptions = {}) {
    this.size = checkNumber('queue.size', options.size, 100, { integer: true, min: 0 })
    this.timeoutMs = checkNumber('queue.timeoutMs', options.timeoutMs, 30_000, { min: 0, minExclusive: true })
    this.retryAfterMs = checkNumber('queue.retryAfterMs', options.retryAfterMs, 1_000, { min: 0 })
  }

  get length(): number {
    return this.#waiters.length
  }

  /**
   * Waits for `attempt` to succeed. Throws a 503 `queue_full` BalancerError at once when the
   * queue is full. `leave` runs exactly once when the waiter leaves the queue, however it ends.
   */
  enqueue(attempt: () => T | typeof STILL_FULL, signal?: AbortSignal, leave?: () => void): Promise<T> {
    if (this.#waiters.length >= this.size) {
      throw new BalancerError(
        'Every backend is at its concurrency limit and the wait queue is full',
        503,
        'queue_full',
        this.retryAfterMs,
      )
    }
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        attempt,
        resolve,
        reject,
        leave,
        timer: undefined,
        signal,
        onAbort: undefined,
      }
      waiter.timer = setTimeout(() => {
        this.#settle(waiter)
        reject(
          new BalancerError(
            `No backend became free within ${this.timeoutMs} ms`,
            503,
            'queue_timeout',
            this.retryAfterMs,
          ),
        )
      }, this.timeoutMs)
      waiter.timer.unref()
      if (signal) {
        waiter.onAbort = () => {
          this.#settle(waiter)
          reject(signal.reason)
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
      this.#waiters.push(waiter)
    })
  }

  /** Capacity may have appeared (a lease finished, a backend came back): serve who can be served. */
  wake(): void {
    if (this.#waking || this.#waiters.length === 0) return
    this.#waking = true
    try {
      for (let i = 0; i < this.#waiters.length; ) {
        const waiter = this.#waiters[i] as Waiter<T>
        let result: T | typeof STILL_FULL
        try {
          result = waiter.attempt()
        } catch (error) {
          this.#settle(waiter)
          waiter.reject(error)
          continue
        }
        if (result === STILL_FULL) {
          i++
          continue
        }
        this.#settle(waiter)
        waiter.resolve(result)
      }
    } finally {
      this.#waking = false
    }
  }

  /** Fails every waiter, e.g. when the balancer closes. */
  rejectAll(error: unknown): void {
    for (const waiter of [...this.#waiters]) {
      this.#settle(waiter)
      waiter.reject(error)
    }
  }

  #settle(waiter: Waiter<T>): void {
    const i = this.#waiters.indexOf(waiter)
    if (i === -1) return
    this.#waiters.splice(i, 1)
    clearTimeout(waiter.timer)
    if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort)
    waiter.leave?.()
  }
}
