import type { WindowSpec } from './store.js'

/** What the memory store keeps per client key and window; swept once `resetAt` has passed. */
export interface WindowCounterState {
  /** From this time on the state counts nothing and may be deleted. */
  resetAt: number
}

/**
 * One strategy's counting over its per-key state, for the memory store. The store checks every
 * window of a request with `used`, then charges all of them or none, then asks each for `msUntilFree`.
 */
export interface WindowCounting<State extends WindowCounterState> {
  /** Units counted in the window at `now` (the state may drop what has left the window). */
  used(state: State, now: number, spec: WindowSpec): number
  /** A state holding one charge of `cost` at `now`. */
  create(now: number, spec: WindowSpec, cost: number): State
  charge(state: State, now: number, spec: WindowSpec, cost: number): void
  /** Milliseconds from `now` until at least `need` units are free in the window (0 if they are). */
  msUntilFree(state: State, now: number, spec: WindowSpec, need: number): number
}

/**
 * The units a window must free before its reset time means anything to the client: `cost` when it
 * has no room for another request like this one, else one more than it has left.
 */
export function unitsToFree(amount: number, used: number, cost: number): number {
  const left = amount - used
  return left < cost ? cost : left + 1
}
