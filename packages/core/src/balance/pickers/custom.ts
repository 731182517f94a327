import { CALLBACK_FAILED, type UserCallbacks } from '../../user-callback.js'
import { describeValue } from '../../validation.js'
import type { BackendState } from '../backend-state.js'
import { BalancerError } from '../errors.js'
import type { BackendMembers } from '../registry.js'
import type { PickContext } from '../types.js'
import type { Picker, PickerFunction } from './picker.js'

/**
 * Adapts a user's picker function. It is called through the callback guard, and it can only
 * choose among the candidates: a throw, a promise or a choice that is not a candidate is logged
 * (once) and the request gets a 503 rather than a backend the user's policy may not allow.
 */
export class CustomPicker implements Picker {
  readonly name: string
  readonly #fn: PickerFunction
  readonly #callbacks: UserCallbacks

  constructor(fn: PickerFunction, callbacks: UserCallbacks) {
    this.name = fn.name || 'custom'
    this.#fn = fn
    this.#callbacks = callbacks
  }

  pick(
    candidates: readonly BackendState[],
    ctx: PickContext,
    _members: BackendMembers,
  ): BackendState | undefined {
    const choice: unknown = this.#callbacks.call('strategy', this.#fn, candidates, ctx)
    if (choice === undefined) return undefined
    if (choice !== CALLBACK_FAILED) {
      for (const c of candidates) {
        if (c === choice || c.id === choice) return c
      }
      const shown = typeof choice === 'string' ? choice : (choice as { id?: unknown } | null)?.id
      this.#callbacks.failed(
        'strategy',
        new Error(
          `it returned ${describeValue(shown ?? choice)}, which is not one of the candidates it was given; ` +
            'return one of them, its id, or undefined',
        ),
      )
    }
    throw new BalancerError('The custom strategy failed to choose a backend', 503, 'no_backend_available')
  }
}
