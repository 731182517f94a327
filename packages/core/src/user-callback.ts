import type { Logger } from './limits/insured-store.js'

/**
 * Every function a user hands to tollgate (`keyGenerator`, `onExceeded`, `hashKey`, `rewrite`,
 * `onUnexpectedError` …) is called through one guard: a sync throw or a rejected promise must
 * neither crash the process (an unhandled rejection ends Node) nor leave a request unanswered.
 */

/** What a guarded call returns when the callback threw or its promise rejected. */
export const CALLBACK_FAILED: unique symbol = Symbol('tollgate.callbackFailed')
export type CallbackFailed = typeof CALLBACK_FAILED

type Guarded<R> = R extends PromiseLike<infer V> ? Promise<V | CallbackFailed> : R | CallbackFailed

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message
  return typeof error === 'string' ? error : 'a non-Error value was thrown'
}

/** Calls user callbacks and logs each kind of failure once, so a broken callback cannot flood the log. */
export class UserCallbacks {
  readonly #logger: Logger
  // Kinds are names written in tollgate's code, never client input, so this set stays small.
  readonly #logged = new Set<string>()

  constructor(logger: Logger) {
    this.#logger = logger
  }

  /** Where the gateway's warnings go. */
  get logger(): Logger {
    return this.#logger
  }

  /**
   * `fn(...args)`, or `CALLBACK_FAILED` if it threw; a returned promise comes back as a promise
   * that resolves to its value or to `CALLBACK_FAILED`, never rejects. Sync callbacks stay sync.
   */
  call<A extends unknown[], R>(kind: string, fn: (...args: A) => R, ...args: A): Guarded<R> {
    let result: R
    try {
      result = fn(...args)
    } catch (error) {
      this.failed(kind, error)
      return CALLBACK_FAILED as Guarded<R>
    }
    if (!isThenable(result)) return result as Guarded<R>
    return Promise.resolve(result).then(
      (value) => value,
      (error: unknown) => {
        this.failed(kind, error)
        return CALLBACK_FAILED
      },
    ) as Guarded<R>
  }

  /** For callbacks whose answer nothing waits on (`onExceeded`, `onUnexpectedError`). */
  notify<A extends unknown[]>(kind: string, fn: ((...args: A) => unknown) | undefined, ...args: A): void {
    if (fn === undefined) return
    const result = this.call(kind, fn, ...args)
    if (isThenable(result)) void result
  }

  failed(kind: string, error: unknown): void {
    if (this.#logged.has(kind)) return
    this.#logged.add(kind)
    this.#logger.warn(
      `tollgate: the ${kind} callback failed (${messageOf(error)}); the request was answered without it. ` +
        'Later failures of this callback are not logged.',
    )
  }
}
