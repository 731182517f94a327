import type { STILL_FULL } from '../balance/concurrency-queue.js'
import type { WaitSubject } from './request-class.js'

/**
 * Where the balancer parks a request that finds every backend full: the FIFO `ConcurrencyQueue`,
 * or the `FairQueue` with `fairness` on. `attempt` tries to serve the request now, returning
 * STILL_FULL to keep waiting; `leave` runs exactly once when the request leaves, however it ends.
 */
export interface WaitQueue<T> {
  readonly length: number
  enqueue(
    attempt: () => T | typeof STILL_FULL,
    signal?: AbortSignal,
    leave?: () => void,
    subject?: WaitSubject,
  ): Promise<T>
  /** Capacity may have appeared: serve who can be served. */
  wake(): void
  rejectAll(error: unknown): void
}
