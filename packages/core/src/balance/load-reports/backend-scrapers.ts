import { optionNames } from '../../option-names.js'
import { checkNumber, fail } from '../../validation.js'
import type { BackendState } from '../backend-state.js'
import { LoadReportScraper } from './scraper.js'

/** `loadReports`: how the gateway reads the load reports of backends that have `metrics`. */
export interface LoadReportOptions {
  /** Time between two scrapes of one backend. Default 1000 ms. */
  intervalMs?: number
  /** A report older than this is no longer used for routing. Default 3 × `intervalMs`. */
  staleAfterMs?: number
  /** A scrape not answered in full by then fails (and the report turns stale). Default min(500, `intervalMs`). */
  timeoutMs?: number
  /**
   * A backend reporting this many waiting requests or more is saturated: left out while another
   * backend has room, as if it were at `maxConcurrency`, without making anything wait for it. Default 8.
   */
  maxWaiting?: number
}

export const LOAD_REPORT_OPTION_NAMES = optionNames<LoadReportOptions>()([
  'intervalMs',
  'staleAfterMs',
  'timeoutMs',
  'maxWaiting',
])

/**
 * One `LoadReportScraper` per registered backend that has `metrics`, started when the backend is
 * registered and closed when it is removed or the balancer closes. The report lands on the
 * backend's state, where loads and the candidate filter read it.
 */
export class BackendScrapers {
  readonly intervalMs: number
  readonly staleAfterMs: number
  readonly timeoutMs: number
  readonly maxWaiting: number
  readonly #now: () => number
  readonly #scrapers = new Map<BackendState, LoadReportScraper>()
  #closed = false

  constructor(options: LoadReportOptions = {}, now: () => number = Date.now) {
    this.intervalMs = checkNumber('loadReports.intervalMs', options.intervalMs, 1000, {
      min: 10,
      integer: true,
    })
    this.staleAfterMs = checkNumber('loadReports.staleAfterMs', options.staleAfterMs, 3 * this.intervalMs, {
      min: 1,
      integer: true,
    })
    this.timeoutMs = checkNumber('loadReports.timeoutMs', options.timeoutMs, Math.min(500, this.intervalMs), {
      min: 1,
      integer: true,
    })
    if (this.timeoutMs > this.intervalMs)
      fail('loadReports.timeoutMs', `at most loadReports.intervalMs (${this.intervalMs})`, this.timeoutMs)
    this.maxWaiting = checkNumber('loadReports.maxWaiting', options.maxWaiting, 8, { min: 1 })
    this.#now = now
  }

  /** Whether the backend's fresh report says its queue is full. A stale report never does. */
  saturated(backend: BackendState): boolean {
    const report = backend.freshReport()
    return report !== undefined && report.waiting >= this.maxWaiting
  }

  attach(backend: BackendState): void {
    const metrics = backend.metrics
    if (metrics === null || this.#closed || this.#scrapers.has(backend)) return
    const scraper = new LoadReportScraper({
      url: new URL(metrics.path, backend.url.origin),
      format: metrics.format,
      intervalMs: this.intervalMs,
      staleAfterMs: this.staleAfterMs,
      timeoutMs: this.timeoutMs,
      now: this.#now,
      onReport: (report) => {
        backend.requestsAtReport = backend.totalRequests
        backend.finishedAtReport = backend.totalFinished
        // Only a queue says the batch was full; a running count alone may be a batch half used.
        if (report.waiting > 0 && report.running > backend.reportedSlots)
          backend.reportedSlots = report.running
      },
    })
    this.#scrapers.set(backend, scraper)
    backend.reports = scraper
    scraper.start()
  }

  detach(backend: BackendState): void {
    const scraper = this.#scrapers.get(backend)
    if (scraper === undefined) return
    this.#scrapers.delete(backend)
    // The report stays readable in a snapshot taken later; it is no longer refreshed.
    void scraper.close()
  }

  async close(): Promise<void> {
    this.#closed = true
    const closing = [...this.#scrapers.values()].map((s) => s.close())
    this.#scrapers.clear()
    await Promise.all(closing)
  }
}
