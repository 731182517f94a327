/**
 * A counter store for fixed windows. One `hit` covers every window a request is
 * checked against (route and application windows alike) so that the store can
 * decide all-or-nothing: a request that any window rejects is charged to none.
 */
export interface WindowSpec {
  /**
   * Names this window's counter among all windows (route scope and policy, e.g.
   * `GET /a:50-per-hour`). With the client key it identifies one counter.
   */
  readonly id: string
  readonly amount: number
  readonly windowMs: number
}

export interface HitResult {
  readonly allowed: boolean
  /** Requests counted in each window after this hit (before it, when rejected), in `windows` order. */
  readonly used: number[]
  /** Milliseconds until each window resets, in `windows` order. */
  readonly resetMs: number[]
}

export interface LimitStore {
  /**
   * Charge `cost` to the client `key`'s counter in every window if all of them have
   * room for it; otherwise charge nothing.
   */
  hit(key: string, windows: readonly WindowSpec[], cost: number): HitResult | Promise<HitResult>
  /**
   * Take back `cost` that an allowed `hit` charged to the same windows, all of them in one step
   * (`deductWhen` settling a request as not counted). A counter never goes below zero, and a
   * window that has started over since is not touched where the store can tell. Optional: a store
   * without it cannot serve `deductWhen`.
   */
  refund?(key: string, windows: readonly WindowSpec[], cost: number): void | Promise<void>
  /** Release timers and connections the store opened itself (never a client it was given). */
  close(): Promise<void> | void
}
