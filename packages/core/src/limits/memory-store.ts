import type { HitResult, LimitStore, WindowSpec } from './store.js'

interface Counter {
  used: number
  resetAt: number
}

export interface MemoryStoreOptions {
  /** How often a sweep of expired counters starts, in ms. Default 60 000. */
  sweepIntervalMs?: number
  /** Counters a sweep looks at per event-loop turn. Default 5 000 (about 1 ms of work). */
  sweepBatchSize?: number
  /** Clock, for tests. */
  now?: () => number
}

/**
 * Fixed-window counters in a Map. The window starts at a key's first hit.
 *
 * Memory is bounded by the number of distinct keys seen within the longest window plus the
 * sweep's lag: every `sweepIntervalMs` a sweep starts that deletes every counter whose window has
 * ended, `sweepBatchSize` counters per event-loop turn, so a million expired counters never block
 * the loop in one go (one pass over them was ~0.4 s). There is deliberately no size cap with
 * eviction, because evicting a live counter would hand that client a fresh window — a flood of
 * new keys must not reset anyone.
 */
export class MemoryStore implements LimitStore {
  /** One table per window id, keyed by client key: lookups hash only the client key, which the
   * framework hands over as the same string object on every request of a connection. */
  readonly #tables = new Map<string, Map<string, Counter>>()
  readonly #found: (Counter | undefined)[] = []
  readonly #now: () => number
  readonly #sweeper: NodeJS.Timeout
  readonly #batch: number
  /** Where the running sweep is: the table it is in and its place in that table. */
  #sweepTables: Iterator<Map<string, Counter>> | undefined
  #sweepTable: Map<string, Counter> | undefined
  #sweepEntries: Iterator<string> | undefined
  #sweepTurn: NodeJS.Immediate | undefined

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now
    this.#batch = options.sweepBatchSize ?? 5_000
    this.#sweeper = setInterval(() => this.#startSweep(), options.sweepIntervalMs ?? 60_000)
    this.#sweeper.unref()
  }

  /** Counters currently held (live or not yet swept). */
  get size(): number {
    let size = 0
    for (const table of this.#tables.values()) size += table.size
    return size
  }

  #table(id: string): Map<string, Counter> {
    let table = this.#tables.get(id)
    if (table === undefined) {
      table = new Map()
      this.#tables.set(id, table)
    }
    return table
  }

  hit(key: string, windows: readonly WindowSpec[], cost: number): HitResult {
    const now = this.#now()
    const n = windows.length
    const used = new Array<number>(n)
    const resetMs = new Array<number>(n)
    // Counters found in the checking pass, so the charging pass needs no second lookup.
    const found = this.#found
    let allowed = true
    for (let i = 0; i < n; i++) {
      const w = windows[i]!
      const counter = this.#tables.get(w.id)?.get(key)
      if (counter === undefined || counter.resetAt <= now) {
        used[i] = 0
        resetMs[i] = w.windowMs
      } else {
        used[i] = counter.used
        resetMs[i] = counter.resetAt - now
      }
      found[i] = counter
      if (used[i]! + cost > w.amount) allowed = false
    }
    if (allowed) {
      for (let i = 0; i < n; i++) {
        const w = windows[i]!
        const counter = found[i]
        if (counter === undefined) {
          this.#table(w.id).set(key, { used: cost, resetAt: now + w.windowMs })
        } else if (counter.resetAt <= now) {
          counter.used = cost
          counter.resetAt = now + w.windowMs
        } else {
          counter.used += cost
        }
        used[i] = used[i]! + cost
      }
    }
    for (let i = 0; i < n; i++) found[i] = undefined
    return { allowed, used, resetMs }
  }

  /** Takes `cost` back from each window's live counter, never below zero (`deductWhen`). */
  refund(key: string, windows: readonly WindowSpec[], cost: number): void {
    const now = this.#now()
    for (let i = 0; i < windows.length; i++) {
      const counter = this.#tables.get(windows[i]!.id)?.get(key)
      if (counter !== undefined && counter.resetAt > now) counter.used = Math.max(0, counter.used - cost)
    }
  }

  /** Delete every counter whose window has ended, now, in one pass (blocks for large maps). */
  sweep(): void {
    this.#sweepTables = undefined
    while (!this.sweepStep(Number.POSITIVE_INFINITY));
  }

  /**
   * Continues the current sweep (or starts one) over at most `limit` counters; true when the
   * sweep has been through every table. A Map iterator stays valid while entries are deleted.
   */
  sweepStep(limit = this.#batch): boolean {
    if (this.#sweepTables === undefined) {
      this.#sweepTables = this.#tables.values()
      this.#sweepTable = undefined
      this.#sweepEntries = undefined
    }
    const now = this.#now()
    let seen = 0
    while (seen < limit) {
      if (this.#sweepEntries === undefined) {
        const next = this.#sweepTables.next()
        if (next.done) {
          this.#sweepTables = undefined
          return true
        }
        this.#sweepTable = next.value
        // Keys, not entries: an entry is a fresh [key, value] array per counter.
        this.#sweepEntries = next.value.keys()
      }
      const entry = this.#sweepEntries.next()
      if (entry.done) {
        this.#sweepEntries = undefined
        continue
      }
      seen++
      const table = this.#sweepTable!
      if (table.get(entry.value)!.resetAt <= now) table.delete(entry.value)
    }
    return false
  }

  #startSweep(): void {
    if (this.#sweepTurn !== undefined) return
    const turn = () => {
      this.#sweepTurn = this.sweepStep() ? undefined : setImmediate(turn).unref()
    }
    turn()
  }

  close(): void {
    clearInterval(this.#sweeper)
    if (this.#sweepTurn !== undefined) clearImmediate(this.#sweepTurn)
    this.#sweepTurn = undefined
    this.#sweepTables = undefined
    this.#tables.clear()
  }
}
