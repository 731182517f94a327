import type { HitResult, LimitStore, WindowSpec } from './store.js'

interface Counter {
  used: number
  resetAt: number
}

export interface MemoryStoreOptions {
  /** How often expired counters are swept out, in ms. */
  sweepIntervalMs?: number
  /** Clock, for tests. */
  now?: () => number
}

/**
 * Fixed-window counters in a Map. The window starts at a key's first hit.
 *
 * Memory is bounded by the number of distinct keys seen within the longest
 * window: a periodic sweep deletes every counter whose window has ended. There is
 * deliberately no size cap with eviction, because evicting a live counter would
 * hand that client a fresh window — a flood of new keys must not reset anyone.
 */
export class MemoryStore implements LimitStore {
  /** One table per window id, keyed by client key: lookups hash only the client key, which the
   * framework hands over as the same string object on every request of a connection. */
  readonly #tables = new Map<string, Map<string, Counter>>()
  readonly #found: (Counter | undefined)[] = []
  readonly #now: () => number
  readonly #sweeper: NodeJS.Timeout

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now
    this.#sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000)
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

  /** Delete counters whose window has ended. */
  sweep(): void {
    const now = this.#now()
    for (const table of this.#tables.values()) {
      for (const [key, counter] of table) {
        if (counter.resetAt <= now) table.delete(key)
      }
    }
  }

  close(): void {
    clearInterval(this.#sweeper)
    this.#tables.clear()
  }
}
