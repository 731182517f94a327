import type { BackendState } from '../backend-state.js'
import { inFlightLoad, type Load } from '../load.js'
import type { Picker, RandomSource } from './picker.js'
import { weightedIndex } from './weighted-sample.js'

/**
 * Power of two choices: draw two distinct candidates (weighted), send to the less loaded
 * (by default, by in-flight count).
 * Nearly as good as scanning for the least loaded, without herding every gateway onto the
 * same "best" backend, and O(1) comparisons per pick.
 */
export class PowerOfTwoPicker implements Picker {
  readonly name: string
  readonly #random: RandomSource
  readonly #load: Load

  constructor(random: RandomSource = Math.random, load: Load = inFlightLoad, name = 'power-of-two') {
    this.#random = random
    this.#load = load
    this.name = name
  }

  pick(candidates: readonly BackendState[]): BackendState | undefined {
    if (candidates.length <= 1) return candidates[0]
    const i = weightedIndex(candidates, this.#random)
    const j = weightedIndex(candidates, this.#random, i)
    const a = candidates[i] as BackendState
    const b = candidates[j] as BackendState
    // Ties go to the first draw, which is already random.
    return this.#load.compare(a, b) > 0 ? b : a
  }
}
