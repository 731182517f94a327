import { PRIORITY_LEVELS, type PriorityClass } from './fairness-options.js'

/** Per-priority state in `BackendsHandle.queue()`, since the queue was made. */
export interface PriorityQueueSnapshot {
  /** The level, higher served first; null on the row that sums the levels past the first 16. */
  priority: number | null
  /** Set when the level is a named one: `critical`, `standard`, `sheddable`. */
  name?: PriorityClass
  waiting: number
  /** Taken from the queue to a backend. */
  served: number
  /** Turned away as sheddable (503 `shed`): on arrival under pressure, or after waiting. */
  shed: number
  /** Ran out of their allowed wait, or came with a deadline that left none (503 `queue_timeout`). */
  timedOut: number
  /** Turned away or pushed out because the queue, or their tenant's part of it, was full. */
  full: number
}

/** What became of a request that queued, or tried to. */
export type QueueOutcome = 'served' | 'shed' | 'timedOut' | 'full'

type Counts = Record<QueueOutcome, number>

/** Distinct levels counted apart; priorities are any number a user function returns. */
export const MAX_PRIORITY_ROWS = 16

const zero = (): Counts => ({ served: 0, shed: 0, timedOut: 0, full: 0 })
const NAMES: ReadonlyMap<number, PriorityClass> = new Map<number, PriorityClass>(
  Object.entries(PRIORITY_LEVELS).map(([name, level]) => [level, name as PriorityClass]),
)

/**
 * What the fair queue did at each priority: counters per level, the named ones from the start, at
 * most MAX_PRIORITY_ROWS levels (later ones add up in one row), so a priority function returning
 * ever new numbers cannot grow it. Counting a request is one map lookup and no allocation.
 */
export class PriorityCounts {
  readonly #rows = new Map<number, Counts>()
  readonly #other = zero()

  constructor() {
    for (const level of NAMES.keys()) this.#rows.set(level, zero())
  }

  count(priority: number, outcome: QueueOutcome): void {
    this.#row(priority)[outcome]++
  }

  /** The rows, highest level first; `levels` are the queue's levels now, for who is waiting. */
  snapshot(levels: Iterable<{ priority: number; waiters: { length: number } }>): PriorityQueueSnapshot[] {
    const waiting = new Map<Counts, number>()
    for (const level of levels) {
      const row = this.#row(level.priority)
      waiting.set(row, (waiting.get(row) ?? 0) + level.waiters.length)
    }
    const rows: PriorityQueueSnapshot[] = [...this.#rows]
      .sort(([a], [b]) => b - a)
      .map(([priority, counts]) => {
        const name = NAMES.get(priority)
        return {
          priority,
          ...(name === undefined ? {} : { name }),
          waiting: waiting.get(counts) ?? 0,
          ...counts,
        }
      })
    const other = this.#other
    if (waiting.has(other) || other.served + other.shed + other.timedOut + other.full > 0)
      rows.push({ priority: null, waiting: waiting.get(other) ?? 0, ...other })
    return rows
  }

  #row(priority: number): Counts {
    let row = this.#rows.get(priority)
    if (row === undefined) {
      if (this.#rows.size >= MAX_PRIORITY_ROWS) return this.#other
      row = zero()
      this.#rows.set(priority, row)
    }
    return row
  }
}
