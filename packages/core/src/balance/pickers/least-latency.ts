import type { BackendState } from '../backend-state.js'
import type { RandomSource } from './picker.js'
import { PowerOfTwoPicker } from './power-of-two.js'

/**
 * Power of two choices on peak-EWMA latency × (in flight + 1), per unit of weight.
 *
 * A backend without a measurement yet borrows the other draw's estimate: it is assumed as
 * fast as the one it is compared with, so it gets tried, and its in-flight count still keeps
 * it from swallowing every request before its first answer arrives. Ties favour the
 * unmeasured one so that it is actually probed.
 */
export class LeastLatencyPicker extends PowerOfTwoPicker {
  override readonly name = 'least-latency'

  constructor(random: RandomSource = Math.random) {
    super(random)
  }

  protected override choose(a: BackendState, b: BackendState): BackendState {
    const aMeasured = a.latencyMeasured
    const bMeasured = b.latencyMeasured
    const aLatency = aMeasured ? a.latencyMs : bMeasured ? b.latencyMs : 1
    const bLatency = bMeasured ? b.latencyMs : aMeasured ? a.latencyMs : 1
    const aCost = (aLatency * (a.inFlight + 1)) / a.weight
    const bCost = (bLatency * (b.inFlight + 1)) / b.weight
    if (bCost < aCost) return b
    if (aCost < bCost) return a
    return aMeasured && !bMeasured ? b : a
  }
}
