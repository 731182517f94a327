/**
 * How a window counts (as the Python `limits` library defines them):
 * - `fixed-window`: one counter per window, starting at the key's first hit;
 * - `moving-window`: a log of the last `amount` hits; a hit passes when the one it would push out
 *   of the last `amount` is older than the window;
 * - `sliding-window-counter`: two counters on windows aligned to the epoch, the previous one
 *   weighted by how much of it still overlaps the moving window.
 */
export type LimitStrategy = 'fixed-window' | 'moving-window' | 'sliding-window-counter'

export const LIMIT_STRATEGIES: readonly LimitStrategy[] = [
  'fixed-window',
  'moving-window',
  'sliding-window-counter',
]

/**
 * A counter store. One `hit` covers every window a request is
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
  /** Absent means `fixed-window`, the only strategy a store must support. */
  readonly strategy?: LimitStrategy
}

export interface HitResult {
  readonly allowed: boolean
  /** Requests counted in each window after this hit (before it, when rejected), in `windows` order. */
  readonly used: number[]
  /**
   * Milliseconds until each window resets, in `windows` order. For a fixed window, until it ends;
   * for the others, until the window next frees room: until a request of this `cost` fits again
   * when it has none left for one, else until its remaining count next grows (0 when it is empty).
   */
  readonly resetMs: number[]
}

/** Where a `hitThen` hands its answer, and where its failure. */
export type HitCallback = (result: HitResult) => void
export type HitErrorCallback = (error: unknown) => void

export interface LimitStore {
  /**
   * Charge `cost` to the client `key`'s counter in every window if all of them have
   * room for it; otherwise charge nothing.
   */
  hit(key: string, windows: readonly WindowSpec[], cost: number): HitResult | Promise<HitResult>
  /**
   * `hit` with callbacks instead of a promise, for a store that answers later (Redis): exactly one
   * of them is called, once (possibly before `hitThen` returns); if `hitThen` throws, neither was. Optional; where present the limiter uses it, which saves a promise
   * per store layer on every request.
   */
  readonly hitThen?:
    | ((
        key: string,
        windows: readonly WindowSpec[],
        cost: number,
        onResult: HitCallback,
        onError: HitErrorCallback,
      ) => void)
    // Written out, so that a store wrapping another (InsuredStore) may hold `undefined` here also
    // for a consumer that compiles with exactOptionalPropertyTypes.
    | undefined
  /**
   * Take back `cost` that an allowed `hit` charged to the same windows, all of them in one step
   * (`deductWhen` settling a request as not counted). A counter never goes below zero, and a
   * window that has started over since is not touched where the store can tell. Optional: a store
   * without it cannot serve `deductWhen`.
   */
  refund?(key: string, windows: readonly WindowSpec[], cost: number): void | Promise<void>
  /**
   * The strategies besides `fixed-window` this store can count by. A store without the property
   * counts fixed windows only, and asking for another strategy fails at startup.
   */
  readonly strategies?: readonly LimitStrategy[]
  /** Release timers and connections the store opened itself (never a client it was given). */
  close(): Promise<void> | void
}
