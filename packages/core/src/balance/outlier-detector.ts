import { optionNames } from '../option-names.js'
import { checkNumber, fail } from '../validation.js'
import type { BackendState } from './backend-state.js'

export interface OutlierDetectorOptions {
  /** Failures in a row that eject a backend. Default 5. */
  consecutiveFailures?: number
  /** First ejection lasts this long; the n-th lasts n times as long. Default 30 000 ms. */
  baseEjectionMs?: number
  /** Upper bound on one ejection. Default 300 000 ms. */
  maxEjectionMs?: number
  /** At most this share of the registered backends is ejected at once. Default 50. */
  maxEjectionPercent?: number
}

export const OUTLIER_OPTION_NAMES = optionNames<OutlierDetectorOptions>()([
  'consecutiveFailures',
  'baseEjectionMs',
  'maxEjectionMs',
  'maxEjectionPercent',
])

/**
 * Passive health: watches attempt outcomes and takes a backend that keeps failing out of
 * rotation for a while (Envoy's consecutive-5xx detector).
 *
 * The cap on ejections keeps a shared cause (a bad deploy, a network blip) from emptying the
 * pool: at most `maxEjectionPercent` of the backends are ejected at once, rounded down, so a
 * single backend is never ejected by this detector. When the cap is reached the remaining
 * failing backends stay in rotation; if every backend fails, the forwarder's retries and 5xx
 * answers tell the client quickly, which is better than a pool with nothing left to try.
 */
export class OutlierDetector {
  readonly consecutiveFailures: number
  readonly baseEjectionMs: number
  readonly maxEjectionMs: number
  readonly maxEjectionPercent: number

  constructor(options: OutlierDetectorOptions = {}) {
    const o = 'health.outlier'
    this.consecutiveFailures = checkNumber(`${o}.consecutiveFailures`, options.consecutiveFailures, 5, {
      integer: true,
      min: 1,
    })
    this.baseEjectionMs = checkNumber(`${o}.baseEjectionMs`, options.baseEjectionMs, 30_000, {
      min: 0,
      minExclusive: true,
    })
    this.maxEjectionMs = checkNumber(`${o}.maxEjectionMs`, options.maxEjectionMs, 300_000, {
      min: this.baseEjectionMs,
    })
    this.maxEjectionPercent = checkNumber(`${o}.maxEjectionPercent`, options.maxEjectionPercent, 50, {
      min: 0,
    })
    if (this.maxEjectionPercent > 100) {
      fail(`${o}.maxEjectionPercent`, 'a number from 0 to 100 (default 50)', this.maxEjectionPercent)
    }
  }

  onSuccess(backend: BackendState): void {
    backend.consecutiveFailures = 0
  }

  /** Counts a failure; returns true when it ejected the backend. */
  onFailure(backend: BackendState, now: number, all: readonly BackendState[]): boolean {
    backend.consecutiveFailures++
    if (backend.consecutiveFailures < this.consecutiveFailures || backend.isEjected(now)) return false
    let ejected = 0
    for (const b of all) if (b !== backend && b.isEjected(now)) ejected++
    if (ejected + 1 > Math.floor((all.length * this.maxEjectionPercent) / 100)) return false

    // A backend that stayed healthy for a full max-ejection period starts over at the base time.
    if (backend.ejectedUntil > 0 && now - backend.ejectedUntil > this.maxEjectionMs) backend.timesEjected = 0
    backend.timesEjected++
    backend.ejectedUntil = now + Math.min(this.baseEjectionMs * backend.timesEjected, this.maxEjectionMs)
    // On re-admission it gets a fresh count, so one more failure does not eject it again at once.
    backend.consecutiveFailures = 0
    return true
  }
}
