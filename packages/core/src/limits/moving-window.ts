import type { WindowSpec } from './store.js'
import type { WindowCounterState, WindowCounting } from './window-counting.js'

/** Slots a new log starts with; it doubles as hits arrive, up to the window's amount. */
const FIRST_CAPACITY = 4

/**
 * A key's hits in one moving window: a ring of timestamps (ms), oldest first, one per unit of
 * cost, never more than the window's amount. A hit is inside the window while `time + windowMs > now`.
 */
export class HitLog implements WindowCounterState {
  /** When the newest hit leaves the window; the log is empty from then on. */
  resetAt: number
  times: Float64Array
  /** Index of the oldest hit in `times`. */
  start = 0
  count = 0

  constructor(amount: number) {
    this.resetAt = 0
    this.times = new Float64Array(Math.min(amount, FIRST_CAPACITY))
  }

  /** Timestamp of the i-th oldest hit. */
  at(i: number): number {
    const times = this.times
    return times[(this.start + i) % times.length]!
  }

  dropBefore(now: number, windowMs: number): void {
    while (this.count > 0 && this.at(0) + windowMs <= now) {
      this.start = (this.start + 1) % this.times.length
      this.count--
    }
  }

  push(now: number, cost: number, amount: number, windowMs: number): void {
    const needed = this.count + cost
    if (needed > this.times.length) this.#grow(Math.min(amount, Math.max(needed, this.times.length * 2)))
    const times = this.times
    let slot = (this.start + this.count) % times.length
    for (let i = 0; i < cost; i++) {
      times[slot] = now
      slot = slot + 1 === times.length ? 0 : slot + 1
    }
    this.count = needed
    this.resetAt = now + windowMs
  }

  #grow(capacity: number): void {
    const next = new Float64Array(capacity)
    for (let i = 0; i < this.count; i++) next[i] = this.at(i)
    this.times = next
    this.start = 0
  }
}

/**
 * `limits`' moving window: a hit of `cost` passes when the hit `amount - cost` places back in the
 * log (newest first) has left the window, that is when fewer than `amount - cost + 1` hits are in it.
 */
export const movingWindow: WindowCounting<HitLog> = {
  used(log: HitLog, now: number, spec: WindowSpec): number {
    log.dropBefore(now, spec.windowMs)
    return log.count
  },
  create(now: number, spec: WindowSpec, cost: number): HitLog {
    const log = new HitLog(spec.amount)
    log.push(now, cost, spec.amount, spec.windowMs)
    return log
  },
  charge(log: HitLog, now: number, spec: WindowSpec, cost: number): void {
    log.push(now, cost, spec.amount, spec.windowMs)
  },
  msUntilFree(log: HitLog, now: number, spec: WindowSpec, need: number): number {
    // `need` units are free once at most `amount - need` hits remain: when the hit that many
    // places before the newest leaves the window.
    const keep = spec.amount - need
    if (keep < 0 || log.count <= keep) return 0
    return log.at(log.count - 1 - keep) + spec.windowMs - now
  },
}
