import type { BackendState } from './backend-state.js'

/**
 * What a prefix-cache miss costs, learned from the attempts themselves: an exponentially weighted
 * least-squares line of attempt duration (dispatch to the end of the answer) over the prompt
 * blocks the chosen server did not hold, fitted only on attempts that found a free batch slot (so
 * the time holds no wait). The slope is the price of one cold block; answer lengths add to every
 * sample alike, which moves the line, not its slope. The duration, not the time to response
 * headers, because llama-server answers a stream's headers before it prefills. The slope stays
 * unknown until both cached and uncached attempts were seen: without a spread of misses there is
 * no line, and the picker then falls back to its load bound.
 */
export class PrefillCost {
  #samples = 0
  #u = 0
  #l = 0
  #uu = 0
  #ul = 0

  observe(uncachedBlocks: number, latencyMs: number): void {
    const a = this.#samples < 1 / WEIGHT ? 1 / (this.#samples + 1) : WEIGHT
    this.#samples++
    this.#u += a * (uncachedBlocks - this.#u)
    this.#l += a * (latencyMs - this.#l)
    this.#uu += a * (uncachedBlocks * uncachedBlocks - this.#uu)
    this.#ul += a * (uncachedBlocks * latencyMs - this.#ul)
  }

  /** Milliseconds one uncached block adds to the first token; undefined until the samples say. */
  get perBlockMs(): number | undefined {
    if (this.#samples < MIN_SAMPLES) return undefined
    const variance = this.#uu - this.#u * this.#u
    if (variance < MIN_VARIANCE) return undefined
    return Math.max(0, (this.#ul - this.#u * this.#l) / variance)
  }
}

// About the last 30 attempts carry the line: quick to follow a server warming up, slow enough
// that one slow answer does not flip it.
const WEIGHT = 1 / 32
const MIN_SAMPLES = 8
// Less than half a block of spread between hits and misses leaves the slope to noise.
const MIN_VARIANCE = 0.25

/**
 * Requests a backend runs at once: its `maxConcurrency`, else the batch its own reports showed
 * full (llama.cpp's busy slots, vLLM's running requests, with others waiting); undefined while unknown.
 */
export function batchSlotsOf(b: BackendState): number | undefined {
  if (b.maxConcurrency !== null) return b.maxConcurrency
  return b.reportedSlots > 0 ? b.reportedSlots : undefined
}

/**
 * Where a new request would stand in the backend's queue: 0 or less when a batch slot is free
 * for it, k when k - 1 others wait before it; undefined when the batch size is unknown.
 */
export function queuePosition(b: BackendState, load: number): number | undefined {
  const slots = batchSlotsOf(b)
  return slots === undefined ? undefined : load + 1 - slots
}

/**
 * Expected wait for a slot at queue position `position`, given one attempt's mean duration: the
 * first of `slots` running answers ends after about duration ÷ (slots + 1), and each request
 * queued before this one takes another duration ÷ slots.
 */
export function expectedWaitMs(position: number, slots: number, serviceMs: number): number {
  if (position <= 0) return 0
  return serviceMs * (1 / (slots + 1) + (position - 1) / slots)
}

/**
 * Requests at or ahead of a new one on `b`: the fresh report, less what ended since, plus what was
 * sent since (at least what is in flight from here); else in flight here.
 */
export function loadOf(b: BackendState): number {
  const report = b.freshReport()
  if (report === undefined) return b.inFlight
  // What this gateway has in flight there is a floor the report (taken a scrape ago) may be below;
  // what it saw finish since is no longer ahead, though the report still counts it.
  const reported = Math.max(0, report.waiting + report.running - b.finishedSinceReport) + b.sentSinceReport
  return Math.max(reported, b.inFlight)
}

/** Its share of the pool: `maxConcurrency`, else its weight. */
export function capacityOf(b: BackendState): number {
  return b.maxConcurrency ?? b.weight
}

/**
 * The bound of consistent hashing with bounded loads, per unit of capacity: `b`, with `load` and
 * one more request, stays within ⌈(1 + loadFactor) × its share of `total`⌉ (`total` counts the
 * candidates' loads plus this request, `capacity` their capacities).
 */
export function withinLoadBound(
  b: BackendState,
  load: number,
  total: number,
  capacity: number,
  loadFactor: number,
): boolean {
  return load + 1 <= Math.ceil(((1 + loadFactor) * total * capacityOf(b)) / capacity)
}
