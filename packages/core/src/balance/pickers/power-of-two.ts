import type { BackendState } from '../backend-state.js'
import { inFlightLoad, type LoadFunction } from '../load.js'
import type { Picker, RandomSource } from './picker.js'
import { weightedIndex } from './weighted-sample.js'

/**
 * Power of two choices: draw two distinct candidates (weighted), send to the less loaded.
 * Nearly as good as scanning for the least loaded, without herding every gateway onto the
 * same "best" backend, and O(1) comparisons per pick.
 */
export class PowerOfTwoPicker implements Picker {
  readonly name: string = 'power-of-two'

  constructor(
    protected readonly random: RandomSource = Math.random,
    private readonly load: LoadFunction = inFlightLoad,
  ) {}

  pick(candidates: readonly BackendState[]): BackendState | undefined {
    if (candidates.length <= 1) return candidates[0]
    const i = weightedIndex(candidates, this.random)
    const j = weightedIndex(candidates, this.random, i)
    return this.choose(candidates[i] as BackendState, candidates[j] as BackendState)
  }

  /** The better of two; ties go to the first draw, which is already random. */
  protected choose(a: BackendState, b: BackendState): BackendState {
    return this.load(b) < this.load(a) ? b : a
  }
}
