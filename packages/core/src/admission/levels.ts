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
  /** The record it queues under: its tenant's, or the newcomers' while the tenant is not established. */
  tenant: TenantRecord
  /** Its tenant's id, which the newcomers' record does not carry. */
  id: string
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
 * The waiter to push out for a request arriving at `priority`: the newest of the lowest class below
 * it (of tenant `only`, when given); else, with `arriving` (its tenant) given, the newest at the
 * same class of the tenant with the most waiting, if that is at least two more than the arriving
 * tenant's. Between `newcomers` (tenants not served before, together) and an established tenant the
 * margin leans to the established one: it takes a place from the newcomers when they hold as many
 * as it does, and gives one up to them only when it holds three more. Neither side can then take a
 * place straight back, so a full queue settles instead of turning both away in turn.
 */
export function pushOutCandidate<T>(
  levels: readonly Level<T>[],
  priority: number,
  only: TenantRecord | undefined,
  arriving: TenantRecord | undefined,
  newcomers?: TenantRecord,
): FairWaiter<T> | undefined {
  for (let l = levels.length - 1; l >= 0; l--) {
    const level = levels[l] as Level<T>
    if (level.priority > priority) break
    let best: FairWaiter<T> | undefined
    if (level.priority < priority) {
      for (const w of level.waiters) {
        if ((only === undefined || w.tenant === only) && (best === undefined || w.seq > best.seq)) best = w
      }
    } else if (arriving !== undefined) {
      for (const w of level.waiters) {
        if (w.tenant.waiting < arriving.waiting + margin(w.tenant, arriving, newcomers)) continue
        if (best === undefined || w.tenant.waiting > best.tenant.waiting) best = w
        else if (w.tenant === best.tenant && w.seq > best.seq) best = w
      }
    }
    if (best !== undefined) return best
  }
  return undefined
}

/** How many more than the arriving tenant a tenant must hold to lose a place to it. */
function margin(holder: TenantRecord, arriving: TenantRecord, newcomers: TenantRecord | undefined): number {
  if (holder === arriving || newcomers === undefined) return 2
  if (holder === newcomers) return 0
  return arriving === newcomers ? 3 : 2
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

/** Moves a waiting request to another tenant's record, tagged as if it arrived now. */
export function moveTo<T>(level: Level<T>, waiter: FairWaiter<T>, tenant: TenantRecord): void {
  level.waiters.splice(level.waiters.indexOf(waiter), 1)
  giveBack(level, waiter)
  waiter.tenant.waiting--
  waiter.start = Math.max(level.virtualTime, level.finish.get(tenant) ?? 0)
  waiter.finish = waiter.start + waiter.cost / tenant.weight
  level.finish.set(tenant, waiter.finish)
  waiter.tenant = tenant
  tenant.waiting++
  insertByStart(level, waiter)
}
