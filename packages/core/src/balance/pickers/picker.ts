import type { BackendState, BackendView } from '../backend-state.js'
import type { BackendMembers } from '../registry.js'
import type { AttemptOutcome, PickContext } from '../types.js'

/**
 * Chooses one backend among candidates the balancer has already filtered (available, serving
 * the model, not excluded, below maxConcurrency). Called on every request: no allocation
 * beyond what cannot be avoided. The candidates array is reused; do not keep it.
 */
export interface Picker {
  readonly name: string
  pick(
    candidates: readonly BackendState[],
    ctx: PickContext,
    members: BackendMembers,
  ): BackendState | undefined
  /**
   * A picker that learns from outcomes leaves a number on each pick, read right after `pick`, and
   * gets it back with the attempt's outcome and duration (dispatch to end) in `attemptEnded`.
   */
  readonly pickNote?: number
  attemptEnded?(backend: BackendState, note: number, outcome: AttemptOutcome, durationMs: number): void
}

/**
 * A custom strategy: return one of the candidates (or its id), or undefined to refuse the
 * request (the client gets 503). Returning anything else is a programming error and throws.
 */
export type PickerFunction = (
  candidates: readonly BackendView[],
  ctx: PickContext,
) => BackendView | string | undefined

export const strategyNames = [
  'round-robin',
  'random',
  'least-connections',
  'power-of-two',
  'least-latency',
  'consistent-hash',
  'least-load',
  'prefix-affinity',
] as const

export type StrategyName = (typeof strategyNames)[number]

/** Source of uniform numbers in [0, 1); injected so distribution tests are deterministic. */
export type RandomSource = () => number
