import { ConcurrencyQueue, type ConcurrencyQueueOptions } from '../balance/concurrency-queue.js'
import { UserCallbacks } from '../user-callback.js'
import { FairQueue, type FairQueueSnapshot } from './fair-queue.js'
import { type FairnessOptions, validateFairness } from './fairness-options.js'
import { type ClientKey, RequestClassifier } from './request-class.js'
import type { WaitQueue } from './wait-queue.js'

export type { FairQueueSnapshot } from './fair-queue.js'
export type { FairnessOptions, PriorityClass } from './fairness-options.js'
export { FAIRNESS_OPTION_NAMES } from './fairness-options.js'
export type { PriorityQueueSnapshot } from './priority-counts.js'
export type { ClientKey, WaitSubject } from './request-class.js'
export type { TenantQueueSnapshot } from './tenant-table.js'
export type { WaitQueue } from './wait-queue.js'

/**
 * The admission layer's one entry: the queue where requests wait for a full backend. Without
 * `fairness` that is today's FIFO; with it, per-tenant fair queues with priorities and deadlines.
 * `clientKey` (the plugin-wide keyGenerator) is who a client is when `fairness.tenant` is not set.
 */
export function createWaitQueue<T>(
  queue: ConcurrencyQueueOptions | undefined,
  fairness: FairnessOptions<never> | undefined,
  callbacks: UserCallbacks | undefined,
  now: () => number,
  clientKey?: ClientKey,
): WaitQueue<T> & { snapshot(): FairQueueSnapshot } {
  // The FIFO checks the queue options either way; the fair queue takes them from it.
  const fifo = new ConcurrencyQueue<T>(queue)
  if (fairness === undefined) {
    return Object.assign(fifo, { snapshot: () => ({ waiting: fifo.length, tenants: [], priorities: [] }) })
  }
  const validated = validateFairness(fairness, fifo.size)
  const classifier = new RequestClassifier(
    validated,
    callbacks ?? new UserCallbacks(console),
    fifo.timeoutMs,
    clientKey,
  )
  return new FairQueue<T>(
    {
      size: fifo.size,
      timeoutMs: fifo.timeoutMs,
      retryAfterMs: fifo.retryAfterMs,
      maxWaitingPerTenant: validated.maxWaitingPerTenant,
      maxTenants: validated.maxTenants,
      idleMs: validated.idleMs,
      now,
    },
    classifier,
  )
}
