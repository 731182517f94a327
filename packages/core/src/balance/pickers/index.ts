import type { BackendState } from '../backend-state.js'
import { quote } from '../config.js'
import type { BackendMembers } from '../registry.js'
import type { PickContext } from '../types.js'
import { type ConsistentHashOptions, ConsistentHashPicker } from './consistent-hash.js'
import { LeastConnectionsPicker } from './least-connections.js'
import { LeastLatencyPicker } from './least-latency.js'
import {
  type Picker,
  type PickerFunction,
  type RandomSource,
  type StrategyName,
  strategyNames,
} from './picker.js'
import { PowerOfTwoPicker } from './power-of-two.js'
import { RandomPicker } from './random.js'
import { RoundRobinPicker } from './round-robin.js'

export { type ConsistentHashOptions, ConsistentHashPicker } from './consistent-hash.js'
export { LeastConnectionsPicker } from './least-connections.js'
export { LeastLatencyPicker } from './least-latency.js'
export {
  type Picker,
  type PickerFunction,
  type RandomSource,
  type StrategyName,
  strategyNames,
} from './picker.js'
export { PowerOfTwoPicker } from './power-of-two.js'
export { RandomPicker } from './random.js'
export { RoundRobinPicker } from './round-robin.js'

export interface PickerOptions {
  random?: RandomSource
  consistentHash?: ConsistentHashOptions
}

/** Adapts a user's picker function, making sure it can only choose among the candidates. */
export class CustomPicker implements Picker {
  readonly name: string

  constructor(private readonly fn: PickerFunction) {
    this.name = fn.name || 'custom'
  }

  pick(
    candidates: readonly BackendState[],
    ctx: PickContext,
    _members: BackendMembers,
  ): BackendState | undefined {
    const choice = this.fn(candidates, ctx)
    if (choice === undefined) return undefined
    for (const c of candidates) {
      if (c === choice || c.id === choice) return c
    }
    // Forwarding anywhere but a registered, available backend is never allowed.
    const shown = typeof choice === 'string' ? choice : (choice as { id?: unknown } | null)?.id
    throw new TypeError(
      `custom picker returned ${quote(shown ?? choice)}, which is not one of the candidates it was given; ` +
        'return one of them, its id, or undefined',
    )
  }
}

/** A picker for a strategy name or a custom function; unknown names throw at creation. */
export function createPicker(strategy: StrategyName | PickerFunction, options: PickerOptions = {}): Picker {
  if (typeof strategy === 'function') return new CustomPicker(strategy)
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
    default:
      throw new TypeError(
        `strategy must be one of ${strategyNames.map((s) => quote(s)).join(', ')} or a picker function, got ${quote(strategy)}`,
      )
  }
}
