import { peakEwmaLoad } from '../load.js'
import type { RandomSource } from './picker.js'
import { PowerOfTwoPicker } from './power-of-two.js'

/** Power of two choices on the peak-EWMA load: latency × (in flight + 1), per unit of weight. */
export class LeastLatencyPicker extends PowerOfTwoPicker {
  constructor(random: RandomSource = Math.random) {
    super(random, peakEwmaLoad, 'least-latency')
  }
}
