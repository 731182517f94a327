import { seededRandom } from './poisson.js'

/**
 * Summary statistics for benchmark samples.
 *
 * Percentiles use the nearest-rank method: the p-th percentile of n sorted samples is the sample at
 * rank ceil(p / 100 × n) (1-based). It always returns a value that was actually observed, so a p99
 * of a few hundred requests is a real request's latency, not a blend of two; with fewer than 100
 * samples p99 is simply the maximum. The median of a list is the usual one (mean of the two middle
 * values for an even count), since it is applied to a handful of per-round figures.
 */

/**
 * @param {readonly number[]} values
 * @returns {number[]} a sorted copy, ascending; NaN dropped
 */
export function sortedCopy(values) {
  return values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b)
}

/**
 * Nearest-rank percentile of samples already sorted ascending.
 * @param {readonly number[]} sorted
 * @param {number} p in [0, 100]
 */
export function percentileOfSorted(sorted, p) {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within [0, 100], got ${p}`)
  const n = sorted.length
  if (n === 0) return Number.NaN
  const rank = Math.max(1, Math.ceil((p / 100) * n))
  return /** @type {number} */ (sorted[rank - 1])
}

/**
 * Nearest-rank percentile; the input need not be sorted and is left untouched.
 * @param {readonly number[]} values
 * @param {number} p in [0, 100]
 */
export function percentile(values, p) {
  return percentileOfSorted(sortedCopy(values), p)
}

/** @param {readonly number[]} values */
export function median(values) {
  const sorted = sortedCopy(values)
  const n = sorted.length
  if (n === 0) return Number.NaN
  const mid = Math.floor(n / 2)
  const upper = sorted[mid] ?? Number.NaN
  return n % 2 === 1 ? upper : ((sorted[mid - 1] ?? Number.NaN) + upper) / 2
}

/** @param {readonly number[]} values */
export function mean(values) {
  const kept = values.filter((v) => !Number.isNaN(v))
  if (kept.length === 0) return Number.NaN
  let sum = 0
  for (const v of kept) sum += v
  return sum / kept.length
}

/**
 * a / b, or NaN when either is missing or b is 0, so one failed round shows as "n/a" instead of
 * Infinity in a table.
 * @param {number} a
 * @param {number} b
 */
export function ratio(a, b) {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return Number.NaN
  return a / b
}

/**
 * The ratio of each round's pair: rounds are run back to back, so dividing within a round cancels
 * most of what the rest of the machine was doing at the time.
 * @param {readonly number[]} a one value per round
 * @param {readonly number[]} b one value per round, same order
 */
export function pairedRatios(a, b) {
  if (a.length !== b.length) throw new RangeError(`paired lists differ in length: ${a.length} vs ${b.length}`)
  return a.map((value, i) => ratio(value, /** @type {number} */ (b[i])))
}

/** Median of the per-round ratios a[i] / b[i]. */
export function medianRatio(/** @type {readonly number[]} */ a, /** @type {readonly number[]} */ b) {
  return median(pairedRatios(a, b))
}

/**
 * A percentile bootstrap interval of `statistic` over `n` paired rounds: `statistic` is called with
 * a resample of round indices (drawn with replacement, from a seeded generator, so the interval is
 * the same on every run of the same figures). NaN results are dropped.
 * @param {(indices: number[]) => number} statistic
 * @param {number} n
 * @param {{ resamples?: number, level?: number, seed?: number }} [options]
 * @returns {[number, number]}
 */
export function bootstrapInterval(statistic, n, { resamples = 2000, level = 0.9, seed = 1 } = {}) {
  if (n === 0) return [Number.NaN, Number.NaN]
  const random = seededRandom(seed)
  const results = []
  const indices = new Array(n)
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) indices[i] = Math.floor(random() * n)
    results.push(statistic(indices))
  }
  const sorted = sortedCopy(results)
  const tail = ((1 - level) / 2) * 100
  return [percentileOfSorted(sorted, tail), percentileOfSorted(sorted, 100 - tail)]
}

/**
 * @param {readonly number[]} values
 * @returns {{ n: number, min: number, p50: number, p90: number, p99: number, max: number, mean: number }}
 */
export function summarize(values) {
  const sorted = sortedCopy(values)
  return {
    n: sorted.length,
    min: sorted.length ? /** @type {number} */ (sorted[0]) : Number.NaN,
    p50: percentileOfSorted(sorted, 50),
    p90: percentileOfSorted(sorted, 90),
    p99: percentileOfSorted(sorted, 99),
    max: sorted.length ? /** @type {number} */ (sorted[sorted.length - 1]) : Number.NaN,
    mean: mean(sorted),
  }
}
