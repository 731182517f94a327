/**
 * Counts per time slot over a sliding span: a ring of `slots` counters, `slotMs` each. Adding is
 * two array writes; a slot is cleared lazily when time comes back round to it, so an idle series
 * costs nothing and its memory is fixed (two arrays of `slots` numbers).
 */
export class RateSeries {
  readonly #slotMs: number
  readonly #counts: Float64Array
  // Which slot (time / slotMs) each counter holds now; a counter of an older slot reads as 0.
  readonly #slotOf: Float64Array

  constructor(slotMs: number, slots: number) {
    this.#slotMs = slotMs
    this.#counts = new Float64Array(slots)
    this.#slotOf = new Float64Array(slots).fill(-1)
  }

  add(now: number, amount = 1): void {
    const slot = Math.floor(now / this.#slotMs)
    const i = slot % this.#counts.length
    if (this.#slotOf[i] !== slot) {
      this.#slotOf[i] = slot
      this.#counts[i] = 0
    }
    this.#counts[i] = (this.#counts[i] as number) + amount
  }

  /** Every slot's count, oldest first; the last is the slot `now` falls in (still filling). */
  values(now: number): number[] {
    const slots = this.#counts.length
    const current = Math.floor(now / this.#slotMs)
    const out = new Array<number>(slots)
    for (let k = 0; k < slots; k++) {
      const slot = current - (slots - 1 - k)
      const i = slot % slots
      out[k] = this.#slotOf[i] === slot ? (this.#counts[i] as number) : 0
    }
    return out
  }

  /**
   * Per second over the slot `now` falls in and the `count - 1` before it: a span of
   * `count - 1` whole slots plus the part of the current one gone by, so a count just made shows.
   */
  perSecond(now: number, count: number): number {
    const current = Math.floor(now / this.#slotMs)
    const span = Math.min(count, this.#counts.length)
    const ms = (span - 1) * this.#slotMs + (now - current * this.#slotMs)
    return ms > 0 ? (this.sum(now, count) * 1000) / ms : 0
  }

  /** The count of the slot `now` falls in and the `count - 1` before it. */
  sum(now: number, count: number): number {
    const slots = this.#counts.length
    const current = Math.floor(now / this.#slotMs)
    let sum = 0
    for (let slot = current - Math.min(count, slots) + 1; slot <= current; slot++) {
      const i = slot % slots
      if (this.#slotOf[i] === slot) sum += this.#counts[i] as number
    }
    return sum
  }
}
