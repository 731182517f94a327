import type { BackendState } from '../backend-state.js'
import type { Picker, RandomSource } from './picker.js'
import { weightedIndex } from './weighted-sample.js'

/** Weighted random: each candidate is chosen with probability weight / total weight. */
export class RandomPicker implements Picker {
  readonly name = 'random'
  readonly #random: RandomSource

  constructor(random: RandomSource = Math.random) {
    this.#random = random
  }

  pick(candidates: readonly BackendState[]): BackendState | undefined {
    if (candidates.length <= 1) return candidates[0]
    return candidates[weightedIndex(candidates, this.#random)]
  }
}
