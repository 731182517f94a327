/**
 * The last `size` values of a measurement with when each was taken, for percentiles over a recent
 * span. Fixed memory (two arrays); a percentile sorts at most `size` numbers, on demand only.
 */
export class RecentSamples {
  readonly #values: Float64Array
  readonly #at: Float64Array
  #next = 0
  #count = 0

  constructor(size: number) {
    this.#values = new Float64Array(size)
    this.#at = new Float64Array(size)
  }

  add(now: number, value: number): void {
    this.#values[this.#next] = value
    this.#at[this.#next] = now
    this.#next = (this.#next + 1) % this.#values.length
    if (this.#count < this.#values.length) this.#count++
  }

  /** The given quantiles (0..1) of the samples taken since `since`, or null when there are none. */
  quantiles(since: number, qs: readonly number[]): { values: number[]; samples: number } | null {
    const kept: number[] = []
    for (let i = 0; i < this.#count; i++)
      if ((this.#at[i] as number) >= since) kept.push(this.#values[i] as number)
    if (kept.length === 0) return null
    kept.sort((a, b) => a - b)
    // Nearest rank: the smallest sample with at least q of all samples at or below it.
    const values = qs.map(
      (q) => kept[Math.min(kept.length - 1, Math.max(0, Math.ceil(q * kept.length) - 1))] as number,
    )
    return { values, samples: kept.length }
  }
}
