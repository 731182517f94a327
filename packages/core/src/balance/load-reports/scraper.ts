import type { Agent } from 'undici'
import { undici } from '../../undici-loader.js'
import { checkKnownKeys, checkNumber, checkObject, checkOneOf, fail } from '../../validation.js'
import { ProbeDeadline } from '../probe-deadline.js'
import { type LoadReport, METRICS_FORMATS, type MetricsFormat, toLoadReport } from './engines.js'

export interface LoadReportScraperOptions {
  /** The server's metrics URL, e.g. `http://10.0.0.5:8000/metrics`. */
  url: string | URL
  format: MetricsFormat
  /** Time between scrapes. Default 1000. */
  intervalMs?: number
  /** A scrape that has not been answered in full by then fails. Default 500, at most `intervalMs`. */
  timeoutMs?: number
  /** A report older than this is stale: no longer a view of the server. Default 3 × `intervalMs`. */
  staleAfterMs?: number
  /** Larger answers fail the scrape instead of being read. Default 4 MiB (vLLM's is ~100 KiB). */
  maxBytes?: number
  /** Clock for report times and staleness. Default `Date.now`. */
  now?: () => number
  /** Called with each good report as it arrives. */
  onReport?: (report: LoadReport) => void
}

export interface LoadReportState {
  /** The last report read, however old, or undefined before the first success. */
  readonly report: LoadReport | undefined
  /** Its age (ms), or undefined. */
  readonly ageMs: number | undefined
  /** True when there is no report to trust: none yet, older than `staleAfterMs`, or the last scrape failed. */
  readonly stale: boolean
  readonly scrapes: number
  readonly failures: number
  readonly consecutiveFailures: number
  /** Why the last failed scrape failed, or undefined after a success. */
  readonly lastError: string | undefined
}

const KNOWN = ['url', 'format', 'intervalMs', 'timeoutMs', 'staleAfterMs', 'maxBytes', 'now', 'onReport']

/**
 * Reads one model server's load from its Prometheus endpoint on an interval. At most one scrape is
 * in flight: a tick that finds one still running is skipped, and every scrape ends by `timeoutMs`.
 * The last good report is kept through failures, but reads as stale from the first failure on, so a
 * caller falls back to its own estimate rather than trusting (or fearing) numbers the server no
 * longer stands behind.
 */
export class LoadReportScraper {
  readonly url: URL
  readonly format: MetricsFormat
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly staleAfterMs: number
  readonly maxBytes: number
  readonly #now: () => number
  readonly #onReport: ((report: LoadReport) => void) | undefined
  #agent: Agent | undefined
  #timer: NodeJS.Timeout | undefined
  #inFlight: Promise<void> | undefined
  #closing = new AbortController()
  #closed: Promise<void> | undefined
  #report: LoadReport | undefined
  #scrapes = 0
  #failures = 0
  #consecutiveFailures = 0
  #lastError: string | undefined

  constructor(options: LoadReportScraperOptions, option = 'loadReports') {
    checkObject(option, options)
    checkKnownKeys(option, options, KNOWN)
    this.url = checkUrl(`${option}.url`, options.url)
    checkOneOf(`${option}.format`, options.format, METRICS_FORMATS)
    this.format = options.format
    this.intervalMs = checkNumber(`${option}.intervalMs`, options.intervalMs, 1000, {
      min: 10,
      integer: true,
    })
    const timeout = checkNumber(`${option}.timeoutMs`, options.timeoutMs, Math.min(500, this.intervalMs), {
      min: 1,
      integer: true,
    })
    if (timeout > this.intervalMs) {
      fail(`${option}.timeoutMs`, `at most ${option}.intervalMs (${this.intervalMs})`, timeout)
    }
    this.timeoutMs = timeout
    this.staleAfterMs = checkNumber(`${option}.staleAfterMs`, options.staleAfterMs, 3 * this.intervalMs, {
      min: 1,
      integer: true,
    })
    this.maxBytes = checkNumber(`${option}.maxBytes`, options.maxBytes, 4 * 1024 * 1024, {
      min: 1,
      integer: true,
    })
    if (options.now !== undefined && typeof options.now !== 'function')
      fail(`${option}.now`, 'a function', options.now)
    this.#now = options.now ?? Date.now
    if (options.onReport !== undefined && typeof options.onReport !== 'function')
      fail(`${option}.onReport`, 'a function', options.onReport)
    this.#onReport = options.onReport
  }

  /** Scrapes now and then every `intervalMs`, until `close()`. The timer does not keep the process alive. */
  start(): void {
    if (this.#timer || this.#closing.signal.aborted) return
    void this.scrape()
    this.#timer = setInterval(() => void this.scrape(), this.intervalMs)
    this.#timer.unref()
  }

  /**
   * One scrape, unless one is already in flight: then that one's promise. Never rejects; the
   * outcome is in `state`.
   */
  scrape(): Promise<void> {
    if (this.#closing.signal.aborted) return Promise.resolve()
    this.#inFlight ??= this.#scrapeOnce().finally(() => {
      this.#inFlight = undefined
    })
    return this.#inFlight
  }

  /** The last report if it can be trusted now (see `state.stale`), else undefined. */
  current(): LoadReport | undefined {
    return this.#isStale(this.#now()) ? undefined : this.#report
  }

  get state(): LoadReportState {
    const now = this.#now()
    return {
      report: this.#report,
      ageMs: this.#report ? now - this.#report.at : undefined,
      stale: this.#isStale(now),
      scrapes: this.#scrapes,
      failures: this.#failures,
      consecutiveFailures: this.#consecutiveFailures,
      lastError: this.#lastError,
    }
  }

  /** Stops the timer and aborts a scrape in flight. Safe to call twice. */
  close(): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  async #close(): Promise<void> {
    this.#closing.abort()
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#inFlight
    await this.#agent?.destroy()
  }

  #isStale(now: number): boolean {
    return (
      this.#report === undefined || this.#consecutiveFailures > 0 || now - this.#report.at > this.staleAfterMs
    )
  }

  async #scrapeOnce(): Promise<void> {
    this.#scrapes++
    try {
      const text = await this.#fetchText()
      const report = toLoadReport(this.format, text, this.#now())
      if (this.#closing.signal.aborted) return
      this.#report = report
      this.#consecutiveFailures = 0
      this.#lastError = undefined
      this.#onReport?.(report)
    } catch (err) {
      if (this.#closing.signal.aborted) return
      this.#failures++
      this.#consecutiveFailures++
      this.#lastError = describeFailure(err, this.timeoutMs)
    }
  }

  async #fetchText(): Promise<string> {
    const u = undici()
    // One kept-alive connection is all a scraper needs; its own agent keeps scrapes off the
    // forwarding pools and their limits.
    this.#agent ??= new u.Agent({ connections: 1, connect: { timeout: this.timeoutMs } })
    const deadline = new ProbeDeadline(this.timeoutMs, this.#closing.signal)
    try {
      const { statusCode, body } = await u.request(this.url, {
        dispatcher: this.#agent,
        headers: { accept: 'text/plain' },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: deadline.signal,
      })
      if (statusCode !== 200) {
        await body.dump({ signal: deadline.signal, limit: DUMP_LIMIT })
        throw new Error(`HTTP ${statusCode}`)
      }
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of body) {
        size += (chunk as Buffer).length
        if (size > this.maxBytes) {
          body.destroy()
          throw new Error(`the answer is larger than ${this.maxBytes} bytes`)
        }
        chunks.push(chunk as Buffer)
      }
      return Buffer.concat(chunks).toString('utf8')
    } finally {
      deadline.clear()
    }
  }
}

function checkUrl(option: string, value: unknown): URL {
  let url: URL | undefined
  try {
    url = value instanceof URL ? new URL(value.href) : typeof value === 'string' ? new URL(value) : undefined
  } catch {
    url = undefined
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    fail(option, 'an http: or https: URL', value)
  }
  return url
}

function describeFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof Error) {
    if (
      err.name === 'TimeoutError' ||
      err.name === 'HeadersTimeoutError' ||
      err.name === 'BodyTimeoutError'
    ) {
      return `timed out after ${timeoutMs} ms`
    }
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message
  }
  return String(err)
}

/** Bytes of an answer read (and dropped) to keep its connection; undici's own default. */
const DUMP_LIMIT = 128 * 1024
