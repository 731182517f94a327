/**
 * Peak-EWMA latency estimate, as in Finagle and tower's `PeakEwma`.
 *
 * A sample above the current estimate replaces it at once, so a backend that
 * turns slow is avoided immediately; a sample below it only pulls the estimate
 * down in proportion to the time since the previous sample, so one lucky fast
 * answer does not make a slow backend look fast. Without samples the estimate
 * fades toward zero, which makes an idle backend that was once slow worth
 * probing again instead of being shunned forever.
 */
export class PeakEwma {
  #estimate = 0
  #updatedAt = 0
  #hasSample = false

  /** @param decayMs time constant: after `decayMs` without samples, 1/e of the estimate remains. */
  constructor(readonly decayMs = 10_000) {}

  /** False until the first sample: pickers treat such a backend optimistically so it gets tried. */
  get measured(): boolean {
    return this.#hasSample
  }

  observe(sampleMs: number, now: number): void {
    if (!(sampleMs >= 0) || !Number.isFinite(sampleMs)) return
    if (!this.#hasSample) {
      this.#estimate = sampleMs
      this.#hasSample = true
    } else {
      const decay = Math.exp(-Math.max(0, now - this.#updatedAt) / this.decayMs)
      const faded = this.#estimate * decay
      this.#estimate = sampleMs > faded ? sampleMs : faded + sampleMs * (1 - decay)
    }
    this.#updatedAt = now
  }

  /** The estimate in milliseconds as of `now`; 0 while unmeasured. */
  value(now: number): number {
    if (!this.#hasSample) return 0
    return this.#estimate * Math.exp(-Math.max(0, now - this.#updatedAt) / this.decayMs)
  }
}
