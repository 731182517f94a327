import type { BackendState } from '../backend-state.js'
import type { Picker } from './picker.js'

/**
 * Smooth weighted round robin, nginx's algorithm: every pick adds each candidate's weight to
 * its running score, the highest score wins and pays back the total. Weights 5:1 interleave
 * as A A B A A A instead of bunching as A A A A A B.
 *
 * Ties go to the lighter backend (then to the earlier one): having reached the same score with
 * a smaller weight, it has waited longer for its turn. This yields AABAAA for 5:1 and nginx's
 * own aabacaa for 5:1:1.
 */
export class RoundRobinPicker implements Picker {
  readonly name = 'round-robin'
  // Scores live beside the backends rather than on them so that pickers stay independent.
  readonly #scores = new WeakMap<BackendState, number>()

  pick(candidates: readonly BackendState[]): BackendState | undefined {
    if (candidates.length <= 1) return candidates[0]
    let best: BackendState | undefined
    let bestScore = 0
    let total = 0
    for (const backend of candidates) {
      const score = (this.#scores.get(backend) ?? 0) + backend.weight
      this.#scores.set(backend, score)
      total += backend.weight
      if (best === undefined || score > bestScore || (score === bestScore && backend.weight < best.weight)) {
        best = backend
        bestScore = score
      }
    }
    if (best) this.#scores.set(best, bestScore - total)
    return best
  }
}
