import type { WindowSpec } from './store.js'
import type { WindowCounterState, WindowCounting } from './window-counting.js'

/**
 * A key's two counters for one sliding window counter: windows aligned to multiples of the window
 * length since the epoch, as in `limits`. The moving window [now - length, now) overlaps the
 * previous bucket by `(length - elapsed) / length`, so the count is
 * `floor(previous × (length - elapsed) / length) + current`.
 */
export class BucketPair implements WindowCounterState {
  /** When the current bucket stops counting as the previous one. */
  resetAt = 0
  /** Index of the current bucket: floor(time / length). */
  bucket = 0
  previous = 0
  current = 0

  /** Moves the pair to the bucket `now` falls in. */
  roll(now: number, windowMs: number): void {
    const bucket = Math.floor(now / windowMs)
    if (bucket === this.bucket) return
    this.previous = bucket === this.bucket + 1 ? this.current : 0
    this.current = 0
    this.bucket = bucket
  }
}

/** The weighted count: the previous bucket's share of the moving window plus the current bucket. */
export function weightedCount(previous: number, current: number, elapsed: number, windowMs: number): number {
  return Math.floor((previous * (windowMs - elapsed)) / windowMs) + current
}

/**
 * Milliseconds from `elapsed` (into the current bucket) until the weighted count is at most `keep`.
 * In the current bucket the previous one's weight falls until it is low enough, or else the bucket
 * ends and the current counter becomes the previous one, falling the same way through the next.
 */
export function msUntilAtMost(
  keep: number,
  previous: number,
  current: number,
  elapsed: number,
  windowMs: number,
): number {
  if (keep < 0) return 0
  if (current <= keep) {
    const room = keep + 1 - current
    // floor(previous × (length - e) / length) <= keep - current  ⇔  previous × (length - e) < room × length
    if (previous * (windowMs - elapsed) < room * windowMs) return 0
    const first = Math.floor((windowMs * (previous - room)) / previous) + 1
    return Math.min(first, windowMs) - elapsed
  }
  const first = Math.floor((windowMs * (current - (keep + 1))) / current) + 1
  return windowMs - elapsed + first
}

export const slidingWindowCounter: WindowCounting<BucketPair> = {
  used(pair: BucketPair, now: number, spec: WindowSpec): number {
    pair.roll(now, spec.windowMs)
    return weightedCount(pair.previous, pair.current, now - pair.bucket * spec.windowMs, spec.windowMs)
  },
  create(now: number, spec: WindowSpec, cost: number): BucketPair {
    const pair = new BucketPair()
    pair.bucket = Math.floor(now / spec.windowMs)
    pair.current = cost
    pair.resetAt = (pair.bucket + 2) * spec.windowMs
    return pair
  },
  charge(pair: BucketPair, _now: number, spec: WindowSpec, cost: number): void {
    pair.current += cost
    pair.resetAt = (pair.bucket + 2) * spec.windowMs
  },
  msUntilFree(pair: BucketPair, now: number, spec: WindowSpec, need: number): number {
    const elapsed = now - pair.bucket * spec.windowMs
    return msUntilAtMost(spec.amount - need, pair.previous, pair.current, elapsed, spec.windowMs)
  },
}
