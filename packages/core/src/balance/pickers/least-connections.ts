import type { BackendState } from '../backend-state.js'
import { inFlightLoad, type Load } from '../load.js'
import type { Picker } from './picker.js'

/**
 * The least loaded candidate; by default fewest in flight relative to capacity (weight, or
 * maxConcurrency when given). The scan starts
 * at a rotating offset so that ties, common when everything is idle, spread over the backends
 * instead of always landing on the first one.
 */
export class LeastConnectionsPicker implements Picker {
  readonly name: string
  readonly #load: Load
  #offset = 0

  constructor(load: Load = inFlightLoad, name = 'least-connections') {
    this.#load = load
    this.name = name
  }

  pick(candidates: readonly BackendState[]): BackendState | undefined {
    const n = candidates.length
    if (n <= 1) return candidates[0]
    const start = this.#offset++ % n
    if (this.#offset >= Number.MAX_SAFE_INTEGER) this.#offset = 0
    let best = candidates[start] as BackendState
    for (let k = 1; k < n; k++) {
      const backend = candidates[(start + k) % n] as BackendState
      if (this.#load.compare(backend, best) < 0) best = backend
    }
    return best
  }
}
