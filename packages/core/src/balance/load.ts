import type { BackendState } from './backend-state.js'

/**
 * How loaded a backend is, kept apart from the pickers that compare loads (tower's `load` vs
 * `balance`): a picker asks which of two backends is less loaded and never reads a signal itself,
 * so any picker runs on any load, and a new signal (a queue the server reports, KV-cache use, a
 * prefix match) plugs in as one more `Load`.
 */
export interface Load {
  /** Negative when `a` is the less loaded, positive when `b` is, 0 for a tie. */
  compare(a: BackendState, b: BackendState): number
}

/** A cost per backend (lower is better), as the common kind of load. */
export type LoadCost = (backend: BackendState) => number

export function loadFromCost(cost: LoadCost): Load {
  return { compare: (a, b) => cost(a) - cost(b) }
}

/**
 * In-flight requests, counting the one about to be sent, per unit of capacity: relative to
 * `maxConcurrency` when the backend declares one, else to its weight.
 */
export const inFlightCost: LoadCost = (b) => (b.inFlight + 1) / (b.maxConcurrency ?? b.weight)

/** Expected wait on a measured backend: peak-EWMA latency × the requests it would serve, per unit of weight. */
export const peakEwmaCost: LoadCost = (b) => (b.latencyMs * (b.inFlight + 1)) / b.weight

export const inFlightLoad: Load = loadFromCost(inFlightCost)

/**
 * Peak-EWMA cost (Finagle's and tower's). A backend without a measurement yet borrows the other's
 * estimate: it is assumed as fast as the one it is compared with, so it gets tried, while its
 * in-flight count keeps it from swallowing every request before its first answer arrives. A tie
 * goes to the unmeasured one, so that it is actually probed.
 */
export const peakEwmaLoad: Load = {
  compare(a, b) {
    const aMeasured = a.latencyMeasured
    const bMeasured = b.latencyMeasured
    if (aMeasured && bMeasured) return peakEwmaCost(a) - peakEwmaCost(b)
    const latency = aMeasured ? a.latencyMs : bMeasured ? b.latencyMs : 1
    const difference = latency * ((a.inFlight + 1) / a.weight - (b.inFlight + 1) / b.weight)
    if (difference !== 0) return difference
    return aMeasured && !bMeasured ? 1 : 0
  },
}

/**
 * What a backend's own report says, plus what this gateway sent since it: requests ahead of a
 * new one, per unit of capacity, grown by KV-cache use. A waiting request counts twice, as it
 * stands for a batch already full; a nearly full KV cache means a new request waits for blocks
 * (or preempts another) even when the batch has room.
 */
export function reportedCost(b: BackendState, waiting: number, running: number, kvUsage = 0): number {
  const ahead = 2 * waiting + running + b.sentSinceReport + 1
  return (ahead / (b.maxConcurrency ?? b.weight)) * (1 + kvUsage)
}

/**
 * `least-load`: the servers' reports when both backends have a fresh one, otherwise peak-EWMA
 * on this gateway's own view for both (mixing a report with a local estimate compares two
 * different scales). A stale report therefore never makes a backend look busy, nor idle.
 */
export const reportedLoad: Load = {
  compare(a, b) {
    const ra = a.freshReport()
    const rb = b.freshReport()
    if (ra === undefined || rb === undefined) return peakEwmaLoad.compare(a, b)
    return (
      reportedCost(a, ra.waiting, ra.running, ra.kvUsage) -
      reportedCost(b, rb.waiting, rb.running, rb.kvUsage)
    )
  },
}
