import type { BackendState } from '../backend-state.js'
import type { RandomSource } from './picker.js'

/** Index of one candidate drawn with probability proportional to weight, skipping `skip`. */
export function weightedIndex(candidates: readonly BackendState[], random: RandomSource, skip = -1): number {
  let total = 0
  for (let i = 0; i < candidates.length; i++) {
    if (i !== skip) total += (candidates[i] as BackendState).weight
  }
  let target = random() * total
  let last = -1
  for (let i = 0; i < candidates.length; i++) {
    if (i === skip) continue
    last = i
    target -= (candidates[i] as BackendState).weight
    if (target < 0) return i
  }
  // Floating-point rounding can leave target at a hair above zero.
  return last
}
