import { movingWindow } from './moving-window.js'
import { slidingWindowCounter } from './sliding-window-counter.js'
import { SteppedSweep } from './stepped-sweep.js'
import type { HitResult, LimitStore, LimitStrategy, WindowSpec } from './store.js'
import { MemoryTokenStore, type ReserveResult, type TokenStore } from './tokens/token-store.js'
import { unitsToFree, type WindowCounterState, type WindowCounting } from './window-counting.js'

/** The counting of every strategy but `fixed-window`, which `hit` does inline. */
const COUNTING: Record<LimitStrategy, WindowCounting<WindowCounterState> | undefined> = {
  'fixed-window': undefined,
  'moving-window': movingWindow as WindowCounting<WindowCounterState>,
  'sliding-window-counter': slidingWindowCounter as WindowCounting<WindowCounterState>,
}

/** A fixed window's counter. */
interface Counter extends WindowCounterState {
  used: number
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
 * Counters in a Map, for every strategy. A fixed window starts at a key's first hit; the other
 * strategies' state is in `moving-window.ts` and `sliding-window-counter.ts`.
 *
 * Memory is bounded by the number of distinct keys seen within the longest window plus the
 * sweep's lag: every `sweepIntervalMs` a sweep starts that deletes every counter whose window has
 * ended, `sweepBatchSize` counters per event-loop turn, so a million expired counters never block
 * the loop in one go (one pass over them was ~0.4 s). There is deliberately no size cap with
 * eviction, because evicting a live counter would hand that client a fresh window — a flood of
 * new keys must not reset anyone.
 */
export class MemoryStore implements LimitStore, TokenStore {
  readonly strategies: readonly LimitStrategy[] = ['fixed-window', 'moving-window', 'sliding-window-counter']
  /** One table per window id, keyed by client key: lookups hash only the client key, which the
   * framework hands over as the same string object on every request of a connection. */
  readonly #tables = new Map<string, Map<string, WindowCounterState>>()
  readonly #found: (WindowCounterState | undefined)[] = []
  readonly #now: () => number
  readonly #sweep: SteppedSweep
  /** The sweep's options, for the token store made on the first reservation. */
  readonly #sweepOptions: Pick<MemoryStoreOptions, 'sweepIntervalMs' | 'sweepBatchSize'>
  /** Token budgets, made on the first reservation: one store instance shared by several gateways
   * must share their token budgets as it shares their request counters. */
  #tokens: MemoryTokenStore | undefined

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now
    this.#sweepOptions = { sweepIntervalMs: options.sweepIntervalMs, sweepBatchSize: options.sweepBatchSize }
    this.#sweep = new SteppedSweep(this.#tables, {
      now: this.#now,
      intervalMs: options.sweepIntervalMs,
      batchSize: options.sweepBatchSize,
    })
  }

  /** Counters currently held (live or not yet swept). */
  get size(): number {
    let size = 0
    for (const table of this.#tables.values()) size += table.size
    return size
  }

  #table(id: string): Map<string, WindowCounterState> {
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
    if (n === 1 && windows[0]!.strategy === undefined) return this.#hitFixed(key, windows[0]!, cost, now)
    const used = new Array<number>(n)
    const resetMs = new Array<number>(n)
    // Counters found in the checking pass, so the charging pass needs no second lookup.
    const found = this.#found
    let allowed = true
    let strategic = false
    for (let i = 0; i < n; i++) {
      const w = windows[i]!
      const state = this.#tables.get(w.id)?.get(key)
      const counting = w.strategy === undefined ? undefined : COUNTING[w.strategy]
      if (counting !== undefined) {
        strategic = true
        used[i] = state === undefined ? 0 : counting.used(state, now, w)
      } else if (state === undefined || state.resetAt <= now) {
        used[i] = 0
        resetMs[i] = w.windowMs
      } else {
        used[i] = (state as Counter).used
        resetMs[i] = state.resetAt - now
      }
      found[i] = state
      if (used[i]! + cost > w.amount) allowed = false
    }
    if (allowed) {
      for (let i = 0; i < n; i++) {
        const w = windows[i]!
        const state = found[i]
        const counting = w.strategy === undefined ? undefined : COUNTING[w.strategy]
        if (counting !== undefined) {
          if (state === undefined) this.#table(w.id).set(key, counting.create(now, w, cost))
          else counting.charge(state, now, w, cost)
        } else if (state === undefined) {
          this.#table(w.id).set(key, { used: cost, resetAt: now + w.windowMs } as Counter)
        } else if (state.resetAt <= now) {
          ;(state as Counter).used = cost
          state.resetAt = now + w.windowMs
        } else {
          ;(state as Counter).used += cost
        }
        used[i] = used[i]! + cost
      }
    }
    if (strategic) this.#resetTimes(key, windows, cost, now, used, resetMs)
    for (let i = 0; i < n; i++) found[i] = undefined
    return { allowed, used, resetMs }
  }

  /** `hit` for the most common case, one fixed window: no passes over arrays. */
  #hitFixed(key: string, w: WindowSpec, cost: number, now: number): HitResult {
    const state = this.#tables.get(w.id)?.get(key) as Counter | undefined
    const live = state !== undefined && state.resetAt > now
    const used = live ? state.used : 0
    const resetMs = live ? state.resetAt - now : w.windowMs
    if (used + cost > w.amount) return { allowed: false, used: [used], resetMs: [resetMs] }
    if (state === undefined) {
      this.#table(w.id).set(key, { used: cost, resetAt: now + w.windowMs } as Counter)
    } else if (live) {
      state.used += cost
    } else {
      state.used = cost
      state.resetAt = now + w.windowMs
    }
    return { allowed: true, used: [used + cost], resetMs: [resetMs] }
  }

  /** Takes `cost` back from each window's live counter, never below zero (`deductWhen`). */
  refund(key: string, windows: readonly WindowSpec[], cost: number): void {
    const now = this.#now()
    for (let i = 0; i < windows.length; i++) {
      const w = windows[i]!
      // Only fixed windows are refunded: the engine refuses deductWhen on the other strategies.
      if (w.strategy !== undefined && w.strategy !== 'fixed-window') continue
      const counter = this.#tables.get(w.id)?.get(key) as { used: number; resetAt: number } | undefined
      if (counter !== undefined && counter.resetAt > now) counter.used = Math.max(0, counter.used - cost)
    }
  }

  /** Fills in `resetMs` for the windows that are not fixed, once the request has been charged or not. */
  #resetTimes(
    key: string,
    windows: readonly WindowSpec[],
    cost: number,
    now: number,
    used: number[],
    resetMs: number[],
  ): void {
    for (let i = 0; i < windows.length; i++) {
      const w = windows[i]!
      const counting = w.strategy === undefined ? undefined : COUNTING[w.strategy]
      if (counting === undefined) continue
      const state = this.#tables.get(w.id)?.get(key)
      resetMs[i] =
        state === undefined ? 0 : counting.msUntilFree(state, now, w, unitsToFree(w.amount, used[i]!, cost))
    }
  }

  reserve(key: string, windows: readonly WindowSpec[], want: number): ReserveResult {
    this.#tokens ??= new MemoryTokenStore({ now: this.#now, ...this.#sweepOptions })
    return this.#tokens.reserve(key, windows, want)
  }

  settle(key: string, windows: readonly WindowSpec[], delta: number): void {
    this.#tokens?.settle(key, windows, delta)
  }

  /** Delete every counter whose window has ended, now, in one pass (blocks for large maps). */
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
    this.#tokens?.close()
    this.#tokens = undefined
  }
}
