import type { BackendState } from './backend-state.js'

/**
 * How loaded a backend is, lower is better. Load signals are kept apart from the pickers that
 * compare them (tower's `load` vs `balance`), so any picker can run on any signal.
 */
export type LoadFunction = (backend: BackendState) => number

/**
 * In-flight requests, counting the one about to be sent, per unit of capacity: relative to
 * `maxConcurrency` when the backend declares one, else to its weight.
 */
export const inFlightLoad: LoadFunction = (b) => (b.inFlight + 1) / (b.maxConcurrency ?? b.weight)

/**
 * Expected wait on this backend: peak-EWMA latency times the requests it would be serving,
 * per unit of weight. 0 while unmeasured; `LeastLatencyPicker` treats that case optimistically.
 */
export const peakEwmaLoad: LoadFunction = (b) => (b.latencyMs * (b.inFlight + 1)) / b.weight
