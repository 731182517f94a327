import { SteppedSweep } from '../stepped-sweep.js'
import type { WindowSpec } from '../store.js'

/** What a reservation found and took, in `windows` order. */
export interface ReserveResult {
  /**
   * Every window had room for the estimate (for one larger than a window's whole amount: that
   * window was unused); when false nothing was charged.
   */
  readonly allowed: boolean
  /** Tokens charged to every window: the estimate, capped at the smallest window's amount. */
  readonly reserved: number
  /** Tokens counted in each window after the reservation (before it, when refused). */
  readonly used: number[]
  readonly resetMs: number[]
  /** Answered by the insurance store while the shared one was down; the settle goes there too. */
  readonly fallback?: boolean
}

/**
 * Token budgets: reserve before the work, settle the difference after it. `reserve` checks every
 * window and charges all of them or none, in one step (one Redis round trip). `settle` adds a
 * difference (negative: a refund) to every window that is still the one reserved in; it never
 * refuses, since the tokens were spent already.
 */
export interface TokenStore {
  reserve(key: string, windows: readonly WindowSpec[], want: number): ReserveResult | Promise<ReserveResult>
  settle(key: string, windows: readonly WindowSpec[], delta: number, fallback?: boolean): void | Promise<void>
  close(): void | Promise<void>
}

interface Counter {
  used: number
  resetAt: number
  /** The window's amount and length, for what an ended counter still carries (`carriedOver`). */
  readonly amount: number
  readonly windowMs: number
}

export interface MemoryTokenStoreOptions {
  /** Clock, for tests. */
  now?: () => number
  /** How often a sweep of ended windows starts, in ms. Default 60 000. */
  sweepIntervalMs?: number
  /** Counters a sweep looks at per event-loop turn. Default 5 000 (about 1 ms of work). */
  sweepBatchSize?: number
}

/**
 * What a window that ended at `resetAt` with `used` tokens of `amount` leaves to the one starting
 * at `now`: what it went over by, less `amount` for every whole window that passed untouched in
 * between. An estimate only bounds what a request can cost; the usage charged after it may go over,
 * and that overrun is owed, not forgiven when the window starts over.
 */
export function carriedOver(
  used: number,
  resetAt: number,
  amount: number,
  windowMs: number,
  now: number,
): number {
  const passed = 1 + Math.floor((now - resetAt) / windowMs)
  return Math.max(0, used - passed * amount)
}

/** A counter whose window has ended and which carries nothing into the next: it can go. */
function isDone(counter: Counter, now: number): boolean {
  return (
    counter.resetAt <= now &&
    carriedOver(counter.used, counter.resetAt, counter.amount, counter.windowMs, now) === 0
  )
}

/**
 * Fixed-window token counters in this process; the window starts at a key's first reservation,
 * and a window's overrun is carried into the next one (`carriedOver`). Ended windows are swept as
 * the request counters are (`MemoryStore`): a sweep starts every `sweepIntervalMs` and looks at
 * `sweepBatchSize` counters per event-loop turn, so a million ended counters never block the loop
 * in one go (one pass over them was ~0.4 s); a counter that still carries an overrun stays.
 */
export class MemoryTokenStore implements TokenStore {
  readonly #tables = new Map<string, Map<string, Counter>>()
  readonly #now: () => number
  readonly #sweep: SteppedSweep<Counter>

  constructor(options: MemoryTokenStoreOptions = {}) {
    this.#now = options.now ?? Date.now
    this.#sweep = new SteppedSweep(this.#tables, {
      now: this.#now,
      isDone,
      intervalMs: options.sweepIntervalMs ?? 60_000,
      batchSize: options.sweepBatchSize ?? 5_000,
    })
  }

  /** Counters held now (live, or ended and not swept yet). */
  get size(): number {
    let size = 0
    for (const table of this.#tables.values()) size += table.size
    return size
  }

  #live(w: WindowSpec, key: string, now: number): Counter | undefined {
    const counter = this.#tables.get(w.id)?.get(key)
    if (counter === undefined) return undefined
    if (counter.resetAt > now) return counter
    const carried = carriedOver(counter.used, counter.resetAt, counter.amount, counter.windowMs, now)
    if (carried === 0) return undefined
    counter.used = carried
    counter.resetAt = now + w.windowMs
    return counter
  }

  reserve(key: string, windows: readonly WindowSpec[], want: number): ReserveResult {
    const now = this.#now()
    const n = windows.length
    const used = new Array<number>(n)
    const resetMs = new Array<number>(n)
    let room = Number.POSITIVE_INFINITY
    let fits = true
    for (let i = 0; i < n; i++) {
      const w = windows[i]!
      const counter = this.#live(w, key, now)
      used[i] = counter?.used ?? 0
      resetMs[i] = counter === undefined ? w.windowMs : counter.resetAt - now
      const left = w.amount - used[i]!
      room = Math.min(room, left)
      if (left < Math.min(want, w.amount)) fits = false
    }
    if (!fits || !(room > 0)) return { allowed: false, reserved: 0, used, resetMs }
    const reserved = Math.min(want, room)
    for (let i = 0; i < n; i++) {
      const w = windows[i]!
      this.#add(w, key, reserved, now)
      used[i] = used[i]! + reserved
    }
    return { allowed: true, reserved, used, resetMs }
  }

  settle(key: string, windows: readonly WindowSpec[], delta: number): void {
    if (delta === 0) return
    const now = this.#now()
    for (const w of windows) this.#add(w, key, delta, now)
  }

  #add(w: WindowSpec, key: string, delta: number, now: number): void {
    const counter = this.#live(w, key, now)
    if (counter !== undefined) {
      counter.used = Math.max(0, counter.used + delta)
      return
    }
    // A refund for a window that has started over belongs to the old window: nothing to give back.
    if (delta <= 0) return
    let table = this.#tables.get(w.id)
    if (table === undefined) {
      table = new Map()
      this.#tables.set(w.id, table)
    }
    table.set(key, { used: delta, resetAt: now + w.windowMs, amount: w.amount, windowMs: w.windowMs })
  }

  /** Deletes every counter whose window has ended and carries nothing, now, in one pass (blocks for large maps). */
  sweep(): void {
    this.#sweep.all()
  }

  /** Continues the current sweep (or starts one) over at most `limit` counters; true when done. */
  sweepStep(limit?: number): boolean {
    return this.#sweep.step(limit)
  }

  close(): void {
    this.#sweep.close()
    this.#tables.clear()
  }
}
