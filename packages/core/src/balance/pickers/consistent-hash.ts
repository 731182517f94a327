import type { BackendState } from '../backend-state.js'
import type { BackendMembers } from '../registry.js'
import type { PickContext } from '../types.js'
import { hash32 } from './hash.js'
import { LeastConnectionsPicker } from './least-connections.js'
import type { Picker } from './picker.js'

export interface ConsistentHashOptions {
  /**
   * ε of consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018): a
   * backend takes at most ceil((1 + ε) × its weighted share of the in-flight requests);
   * past that, the key moves on along the ring. Default 0.25.
   */
  loadFactor?: number
  /**
   * Ring points per unit of weight; more points, smoother shares. Default 160. Counts depend on
   * a backend's own weight only, so adding or removing one backend never moves another's points.
   */
  virtualNodes?: number
}

/**
 * Sends the same key (a conversation, a session) to the same backend so its prompt cache is
 * reused, until that backend carries more than its bounded share. The ring is built over every
 * registered backend, not only the current candidates, so an ejected or excluded backend does
 * not reshuffle everyone else's keys: its keys walk on to the next point and come back later.
 * Requests without a key are spread by least connections.
 */
export class ConsistentHashPicker implements Picker {
  readonly name = 'consistent-hash'
  readonly loadFactor: number
  readonly virtualNodes: number
  readonly #fallback = new LeastConnectionsPicker()

  #builtVersion = -1
  #builtFrom: readonly BackendState[] | null = null
  #members: BackendState[] = []
  #indexOf = new Map<BackendState, number>()
  #points = new Uint32Array(0)
  #owners = new Int32Array(0)
  // Per-pick marks stamped with an epoch, so that a pick needs no Set of its own.
  #candidateMark = new Int32Array(0)
  #visitedMark = new Int32Array(0)
  #epoch = 0

  constructor(options: ConsistentHashOptions = {}) {
    this.loadFactor = options.loadFactor ?? 0.25
    this.virtualNodes = options.virtualNodes ?? 160
  }

  pick(
    candidates: readonly BackendState[],
    ctx: PickContext,
    members: BackendMembers,
  ): BackendState | undefined {
    const key = ctx.hashKey
    if (candidates.length <= 1 || key === undefined || key === '') return this.#fallback.pick(candidates)
    const all = members.list()
    if (members.version !== this.#builtVersion || all !== this.#builtFrom) this.#build(all, members.version)

    if (++this.#epoch >= 0x7fffffff) {
      this.#epoch = 1
      this.#candidateMark.fill(0)
      this.#visitedMark.fill(0)
    }
    const epoch = this.#epoch
    let totalInFlight = 0
    let totalWeight = 0
    let onRing = 0
    for (const c of candidates) {
      totalInFlight += c.inFlight
      totalWeight += c.weight
      const i = this.#indexOf.get(c)
      if (i !== undefined) {
        this.#candidateMark[i] = epoch
        onRing++
      }
    }

    const points = this.#points
    const n = points.length
    if (n > 0 && onRing > 0) {
      const budget = (1 + this.loadFactor) * (totalInFlight + 1)
      let pos = lowerBound(points, hash32(key))
      let seen = 0
      for (let step = 0; step < n; step++, pos++) {
        if (pos === n) pos = 0
        const owner = this.#owners[pos] as number
        if (this.#candidateMark[owner] !== epoch || this.#visitedMark[owner] === epoch) continue
        this.#visitedMark[owner] = epoch
        const backend = this.#members[owner] as BackendState
        if (backend.inFlight + 1 <= Math.ceil((budget * backend.weight) / totalWeight)) return backend
        if (++seen === onRing) break
      }
    }
    // Every candidate is at its bound (possible only with rounding) or off the ring.
    return this.#fallback.pick(candidates)
  }

  #build(all: readonly BackendState[], version: number): void {
    const n = all.length
    const counts = all.map((b) =>
      Math.min(maxPointsPerBackend, Math.max(1, Math.round(this.virtualNodes * b.weight))),
    )
    const entries: { point: number; owner: number }[] = []
    for (let i = 0; i < n; i++) {
      const id = (all[i] as BackendState).id
      const count = counts[i] as number
      for (let v = 0; v < count; v++) entries.push({ point: hash32(`${id}#${v}`), owner: i })
    }
    // Ties between points are broken by id order so the ring does not depend on registration order.
    entries.sort(
      (x, y) =>
        x.point - y.point || compare((all[x.owner] as BackendState).id, (all[y.owner] as BackendState).id),
    )
    this.#points = Uint32Array.from(entries, (e) => e.point)
    this.#owners = Int32Array.from(entries, (e) => e.owner)
    this.#members = [...all]
    this.#indexOf = new Map(all.map((b, i) => [b, i]))
    this.#candidateMark = new Int32Array(n)
    this.#visitedMark = new Int32Array(n)
    this.#epoch = 0
    this.#builtVersion = version
    this.#builtFrom = all
  }
}

// Bounds ring size (and rebuild time) when someone writes weight: 1000.
const maxPointsPerBackend = 10_000

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** First index whose point is >= value, or 0 past the end (the ring wraps). */
function lowerBound(points: Uint32Array, value: number): number {
  let lo = 0
  let hi = points.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((points[mid] as number) < value) lo = mid + 1
    else hi = mid
  }
  return lo === points.length ? 0 : lo
}
