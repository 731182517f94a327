import { UserCallbacks } from '../../user-callback.js'
import { closestName, describeValue, failWith } from '../../validation.js'
import { type ConsistentHashOptions, ConsistentHashPicker } from './consistent-hash.js'
import { CustomPicker } from './custom.js'
import { LeastConnectionsPicker } from './least-connections.js'
import { LeastLatencyPicker } from './least-latency.js'
import { LeastLoadPicker } from './least-load.js'
import {
  type Picker,
  type PickerFunction,
  type RandomSource,
  type StrategyName,
  strategyNames,
} from './picker.js'
import { PowerOfTwoPicker } from './power-of-two.js'
import { type PrefixAffinityOptions, PrefixAffinityPicker } from './prefix-affinity.js'
import { RandomPicker } from './random.js'
import { RoundRobinPicker } from './round-robin.js'

export { type ConsistentHashOptions, ConsistentHashPicker } from './consistent-hash.js'
export { CustomPicker } from './custom.js'
export { LeastConnectionsPicker } from './least-connections.js'
export { LeastLatencyPicker } from './least-latency.js'
export { LeastLoadPicker } from './least-load.js'
export {
  type Picker,
  type PickerFunction,
  type RandomSource,
  type StrategyName,
  strategyNames,
} from './picker.js'
export { PowerOfTwoPicker } from './power-of-two.js'
export {
  PREFIX_AFFINITY_OPTION_NAMES,
  type PrefixAffinityOptions,
  PrefixAffinityPicker,
} from './prefix-affinity.js'
export { RandomPicker } from './random.js'
export { RoundRobinPicker } from './round-robin.js'

export interface PickerOptions {
  random?: RandomSource
  consistentHash?: ConsistentHashOptions
  prefixAffinity?: PrefixAffinityOptions
  /** The guard a custom picker function is called through; default one that logs to `console`. */
  callbacks?: UserCallbacks
}

/** A picker for a strategy name or a custom function; unknown names throw at creation. */
export function createPicker(strategy: StrategyName | PickerFunction, options: PickerOptions = {}): Picker {
  if (typeof strategy === 'function')
    return new CustomPicker(strategy, options.callbacks ?? new UserCallbacks(console))
  const random = options.random ?? Math.random
  switch (strategy) {
    case 'round-robin':
      return new RoundRobinPicker()
    case 'random':
      return new RandomPicker(random)
    case 'least-connections':
      return new LeastConnectionsPicker()
    case 'power-of-two':
      return new PowerOfTwoPicker(random)
    case 'least-latency':
      return new LeastLatencyPicker(random)
    case 'consistent-hash':
      return new ConsistentHashPicker(options.consistentHash)
    case 'least-load':
      return new LeastLoadPicker()
    case 'prefix-affinity':
      return new PrefixAffinityPicker(options.prefixAffinity)
    default: {
      const guess = typeof strategy === 'string' ? closestName(strategy, strategyNames) : undefined
      return failWith(
        'strategy',
        `must be one of ${strategyNames.map((s) => describeValue(s)).join(', ')} or a picker function; got ${describeValue(strategy)}${guess ? `; did you mean "${guess}"?` : ''}`,
      )
    }
  }
}
