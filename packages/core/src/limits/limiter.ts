import type { LimitDecision, WindowState } from './decision.js'
import { describeLimit, policyName, type RateLimitItem } from './notation.js'
import type { HitResult, LimitStore, LimitStrategy, WindowSpec } from './store.js'

/** A set of windows that share counters under one scope name. */
export interface WindowGroup {
  /** Counter namespace: requests under the same scope and client key share counters. */
  readonly scope: string
  readonly items: readonly RateLimitItem[]
  /** Put before a window's policy name when another group already uses that name (`application`). */
  readonly label?: string
  /** How the group's windows count; default `fixed-window`. */
  readonly strategy?: LimitStrategy
}

/**
 * Put after a window's counter name for the strategies that keep other data than a fixed window's
 * counter, so that a scope counted two ways never reads one strategy's data as another's.
 */
const COUNTER_SUFFIX: Record<LimitStrategy, string> = {
  'fixed-window': '',
  'moving-window': ':moving',
  'sliding-window-counter': ':sliding',
}

interface PreparedWindow {
  readonly item: RateLimitItem
  readonly policy: string
  readonly described: string
  /** What the store is asked for; built once so a check allocates no key strings. */
  readonly spec: WindowSpec
}

/**
 * Checks a request against one or more window groups in a single store hit. Each
 * window's counter is named `<scope>:<policy>`, and the store keeps one per client key.
 */
export class RateLimiter {
  readonly #store: LimitStore
  readonly #windows: readonly PreparedWindow[]
  readonly #specs: readonly WindowSpec[]
  /** The `RateLimit-Policy` header value; it only depends on configuration. */
  readonly policyHeader: string
  /** Whether the store answers by callback (`LimitStore.hitThen`), so `hitThen` may be used. */
  readonly answersByCallback: boolean

  constructor(store: LimitStore, groups: readonly WindowGroup[]) {
    this.#store = store
    this.answersByCallback = store.hitThen !== undefined
    const windows: PreparedWindow[] = []
    groups.forEach((group, index) => {
      for (const item of group.items) {
        const counter = policyName(item)
        const strategy = group.strategy ?? 'fixed-window'
        const id = `${group.scope}:${counter}${COUNTER_SUFFIX[strategy]}`
        // The same limit written twice in one scope names one counter; listing it twice would
        // charge that counter twice per request and halve the limit.
        if (windows.some((w) => w.spec.id === id)) continue
        // The same limit in two scopes is two policies, and a header name must tell them apart.
        let policy = counter
        if (windows.some((w) => w.policy === policy))
          policy = `${group.label ?? `scope-${index + 1}`}-${counter}`
        const spec: WindowSpec =
          strategy === 'fixed-window'
            ? { id, amount: item.amount, windowMs: item.windowMs }
            : { id, amount: item.amount, windowMs: item.windowMs, strategy }
        windows.push({ item, policy, described: describeLimit(item), spec })
      }
    })
    if (windows.length === 0) throw new RangeError('tollgate: a rate limiter needs at least one limit')
    this.#windows = windows
    this.#specs = windows.map((w) => w.spec)
    this.policyHeader = windows
      .map((w) => `"${w.policy}";q=${w.item.amount};w=${w.item.windowMs / 1000}`)
      .join(', ')
  }

  get items(): RateLimitItem[] {
    return this.#windows.map((w) => w.item)
  }

  hit(clientKey: string, cost: number): LimitDecision | Promise<LimitDecision> {
    // A rejected promise as the failure's value: the returned promise then rejects with the error.
    return this.hitOr(clientKey, cost, rejectWith) as LimitDecision | Promise<LimitDecision>
  }

  /**
   * `hit`, with what an async store's failure becomes handled in the same step (a request to a
   * shared store then takes one promise, not two). A synchronous store's throw still throws.
   */
  hitOr<F>(
    clientKey: string,
    cost: number,
    onFailure: (error: unknown) => F,
  ): LimitDecision | Promise<LimitDecision | F> {
    const store = this.#store
    if (this.answersByCallback) {
      return new Promise<LimitDecision | F>((resolve) => this.hitThen(clientKey, cost, resolve, onFailure))
    }
    const result = store.hit(clientKey, this.#specs, cost)
    if (result instanceof Promise) return result.then((r) => this.#decide(clientKey, cost, r), onFailure)
    return this.#decide(clientKey, cost, result)
  }

  /**
   * `hit` for a store that answers by callback (see `answersByCallback`): no promise at all.
   * `onDone` is called once, possibly before this returns, with the decision or with what
   * `onFailure` makes of the store's error.
   */
  hitThen<F>(
    clientKey: string,
    cost: number,
    onDone: (outcome: LimitDecision | F) => void,
    onFailure: (error: unknown) => F,
  ): void {
    this.#store.hitThen!(
      clientKey,
      this.#specs,
      cost,
      (r) => {
        let decision: LimitDecision
        try {
          decision = this.#decide(clientKey, cost, r)
        } catch (error) {
          onDone(onFailure(error))
          return
        }
        onDone(decision)
      },
      (error) => onDone(onFailure(error)),
    )
  }

  /** Takes back what an allowed `hit` of `cost` charged (`deductWhen`); the store must have `refund`. */
  refund(clientKey: string, cost: number): void | Promise<void> {
    return this.#store.refund?.(clientKey, this.#specs, cost)
  }

  #decide(key: string, cost: number, result: HitResult): LimitDecision {
    const windows = this.#windows
    if (windows.length === 1) return this.#decideOne(key, cost, result, windows[0]!)
    const states = new Array<WindowState>(windows.length)
    let binding = 0
    for (let i = 0; i < windows.length; i++) {
      const state = windowState(windows[i]!, result.used[i], result.resetMs[i])
      states[i] = state
      if (i > 0 && bindsBefore(state, states[binding]!, result.allowed, cost)) binding = i
    }
    return decision(key, cost, result.allowed, states, states[binding]!, windows[binding]!.described)
  }

  /** `#decide` for the common single window: no loop and no choice of binding window. */
  #decideOne(key: string, cost: number, result: HitResult, window: PreparedWindow): LimitDecision {
    const state = windowState(window, result.used[0], result.resetMs[0])
    return decision(key, cost, result.allowed, [state], state, window.described)
  }
}

/**
 * A window's state from a store's answer, clamped to what the window allows, so the headers stay
 * truthful (and within the Structured Field integer range) whatever a custom store returns.
 */
function windowState(
  w: PreparedWindow,
  answeredUsed: number | undefined,
  answeredReset: number | undefined,
): WindowState {
  const used = answeredUsed ?? 0
  const reset = answeredReset ?? w.item.windowMs
  return {
    item: w.item,
    policy: w.policy,
    used,
    remaining: Math.max(0, w.item.amount - used),
    resetMs: Math.max(0, Math.min(reset, w.item.windowMs)),
  }
}

function decision(
  key: string,
  cost: number,
  allowed: boolean,
  windows: WindowState[],
  bound: WindowState,
  limit: string,
): LimitDecision {
  const never = !allowed && cost > bound.item.amount
  return {
    allowed,
    key,
    cost,
    windows,
    binding: bound,
    retryAfter: allowed || never ? 0 : Math.max(1, Math.ceil(bound.resetMs / 1000)),
    limit,
  }
}

function rejectWith(error: unknown): Promise<never> {
  return Promise.reject(error)
}

/**
 * Allowed: the window with the fewest requests left binds (the longer wait on a tie).
 * Rejected: a window whose whole amount is below `cost` binds first, since no wait helps; then,
 * among windows without room for `cost`, the one that resets last, since the client must wait for it.
 */
function bindsBefore(candidate: WindowState, current: WindowState, allowed: boolean, cost: number): boolean {
  if (allowed) {
    if (candidate.remaining !== current.remaining) return candidate.remaining < current.remaining
    return candidate.resetMs > current.resetMs
  }
  const candidateNever = candidate.item.amount < cost
  const currentNever = current.item.amount < cost
  if (candidateNever !== currentNever) return candidateNever
  const candidateFull = candidate.remaining < cost
  const currentFull = current.remaining < cost
  if (candidateFull !== currentFull) return candidateFull
  return candidate.resetMs > current.resetMs
}
