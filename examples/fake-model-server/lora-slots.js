/**
 * LoRA adapters served as models, as vLLM with `--enable-lora --lora-modules … --max-loras N` serves
 * them: a request names its adapter in `model`; one batch holds requests of at most `maxLoras`
 * adapters, so a request whose adapter would be one too many waits while requests behind it that
 * fit go ahead (vLLM's scheduler skips it); adapters stay loaded in `maxLoras` GPU slots, least
 * recently used evicted first, and starting a request whose adapter is not in a slot loads it.
 *
 * `/metrics` reports them as vLLM's `vllm:lora_requests_info` gauge: one series per combination of
 * running and waiting adapters ever reported, its value the wall-clock time (seconds) it was last
 * current. vLLM stamps the current combination at every engine step; the fake stamps it at every
 * scrape, so the series with the highest value is the current one either way.
 */

/** Series kept; vLLM keeps every one it wrote, which a long-running fake should not. */
const MAX_SERIES = 64

export class LoraSlots {
  /** @param {readonly string[]} adapters @param {number} maxLoras */
  constructor(adapters, maxLoras) {
    this.adapters = new Set(adapters)
    this.maxLoras = maxLoras
    /** @type {Map<string, number>} adapter → requests of it in the batch, in the order adapters joined */
    this.running = new Map()
    /** @type {string[]} adapters in GPU slots, least recently used first */
    this.resident = []
    /** Adapters loaded into a slot since the start. */
    this.loads = 0
    /** @type {Map<string, { running: string, waiting: string, at: number }>} */
    this.series = new Map()
    this.lastStamp = 0
  }

  /** @param {string} model */
  has(model) {
    return this.adapters.has(model)
  }

  /** Whether a request of `adapter` may join the batch now; a base-model request (null) always may. @param {string | null} adapter */
  fits(adapter) {
    return adapter === null || this.running.has(adapter) || this.running.size < this.maxLoras
  }

  /** @param {string | null} adapter */
  start(adapter) {
    if (adapter === null) return
    this.running.set(adapter, (this.running.get(adapter) ?? 0) + 1)
    const at = this.resident.indexOf(adapter)
    if (at >= 0) this.resident.splice(at, 1)
    else {
      this.loads++
      if (this.resident.length >= this.maxLoras) {
        const idle = this.resident.findIndex((a) => !this.running.has(a))
        this.resident.splice(Math.max(idle, 0), 1)
      }
    }
    this.resident.push(adapter)
  }

  /** @param {string | null} adapter */
  finish(adapter) {
    if (adapter === null) return
    const left = (this.running.get(adapter) ?? 1) - 1
    if (left > 0) this.running.set(adapter, left)
    else this.running.delete(adapter)
  }

  /**
   * The gauge's series, the current combination stamped now.
   * @param {Iterable<string | null>} waitingAdapters adapters of the queued requests, in queue order
   * @returns {{ running: string, waiting: string, at: number }[]}
   */
  report(waitingAdapters) {
    const waiting = new Set()
    for (const a of waitingAdapters) if (a !== null) waiting.add(a)
    const running = [...this.running.keys()].join(',')
    const waitingText = [...waiting].join(',')
    const key = `${running}\n${waitingText}`
    // Strictly increasing, so two scrapes within a millisecond still tell which is current.
    const at = Math.max(Date.now() / 1000, this.lastStamp + 0.001)
    this.lastStamp = at
    this.series.delete(key)
    this.series.set(key, { running, waiting: waitingText, at })
    if (this.series.size > MAX_SERIES)
      this.series.delete(/** @type {string} */ (this.series.keys().next().value))
    return [...this.series.values()]
  }
}
