import type { STILL_FULL } from '../balance/concurrency-queue.js'
import type { TenantRecord } from './tenant-table.js'

/** The fair queue's priority levels and the requests in them, apart from the queue's rules. */

/** One waiting request. */
export interface FairWaiter<T> {
  attempt: () => T | typeof STILL_FULL
  resolve: (value: T) => void
  reject: (error: unknown) => void
  leave: (() => void) | undefined
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  timer: NodeJS.Timeout | undefined
  tenant: TenantRecord
  level: Level<T>
  cost: number
  /** Virtual start and finish tags (start-time fair queuing). */
  start: number
  finish: number
  seq: number
  waitMs: number
  /** Waited half its allowed time: the queue is under sustained pressure while any such waits. */
  pressing: boolean
}

/** One priority: its waiters in service order and its own virtual clock. */
export interface Level<T> {
  priority: number
  virtualTime: number
  /** Sorted by start tag, then arrival. */
  waiters: FairWaiter<T>[]
  /** Each tenant's last finish tag at this priority. */
  finish: Map<TenantRecord, number>
}

/** The level of `priority` in `levels` (highest first), added in its place when missing. */
export function levelOf<T>(levels: Level<T>[], priority: number): Level<T> {
  let i = 0
  while (i < levels.length && (levels[i] as Level<T>).priority > priority) i++
  const found = levels[i]
  if (found !== undefined && found.priority === priority) return found
  const level: Level<T> = { priority, virtualTime: 0, waiters: [], finish: new Map() }
  levels.splice(i, 0, level)
  return level
}

/** Keeps a level in service order: by start tag, equal tags by arrival. */
export function insertByStart<T>(level: Level<T>, waiter: FairWaiter<T>): void {
  const list = level.waiters
  let i = list.length
  while (i > 0 && (list[i - 1] as FairWaiter<T>).start > waiter.start) i--
  list.splice(i, 0, waiter)
}

/**
 * The waiter to push out for a newcomer at `priority`: the newest of the lowest class below it
 * (of tenant `only`, when given); else, with `newcomer` given, the newest at the same class of
 * the tenant with the most waiting, if that is at least two more than the newcomer's tenant.
 */
export function pushOutCandidate<T>(
  levels: readonly Level<T>[],
  priority: number,
  only: TenantRecord | undefined,
  newcomer: TenantRecord | undefined,
): FairWaiter<T> | undefined {
  for (let l = levels.length - 1; l >= 0; l--) {
    const level = levels[l] as Level<T>
    if (level.priority > priority) break
    let best: FairWaiter<T> | undefined
    if (level.priority < priority) {
      for (const w of level.waiters) {
        if ((only === undefined || w.tenant === only) && (best === undefined || w.seq > best.seq)) best = w
      }
    } else if (newcomer !== undefined) {
      for (const w of level.waiters) {
        if (w.tenant.waiting < newcomer.waiting + 2) continue
        if (best === undefined || w.tenant.waiting > best.tenant.waiting) best = w
        else if (w.tenant === best.tenant && w.seq > best.seq) best = w
      }
    }
    if (best !== undefined) return best
  }
  return undefined
}

function byStart<T>(a: FairWaiter<T>, b: FairWaiter<T>): number {
  return a.start - b.start || a.seq - b.seq
}

/**
 * A request that leaves unserved (timed out, cancelled, pushed out, shed) gives its tenant its cost
 * back: the tenant's later requests move up by it, as if it had never queued. Without this a tenant
 * whose requests time out would be charged for service it never got.
 */
export function giveBack<T>(level: Level<T>, gone: FairWaiter<T>): void {
  const shift = gone.finish - gone.start
  let moved = false
  for (const w of level.waiters) {
    if (w.tenant !== gone.tenant || w.seq < gone.seq) continue
    w.start -= shift
    w.finish -= shift
    moved = true
  }
  const last = level.finish.get(gone.tenant)
  if (last !== undefined) level.finish.set(gone.tenant, last - shift)
  if (moved) level.waiters.sort(byStart)
}
