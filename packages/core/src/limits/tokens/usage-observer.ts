import type { IncomingHttpHeaders } from 'node:http'
import { StringDecoder } from 'node:string_decoder'
import type { ForwardObserver } from '../../forward/types.js'
import type { RequestEvents } from '../../observe/events.js'
import { type RequestEstimate, tokensForChars } from './estimate.js'
import { askForUsage } from './usage-request.js'
import { UsageScanner } from './usage-scanner.js'

/** How the tokens a request is charged were found. */
export type UsageSource = 'usage' | 'estimate' | 'refund'

export interface MeasuredUsage {
  readonly tokens: number
  /** `reserved`: the reservation stands (a client that left a JSON answer, a count that is no number). */
  readonly source: UsageSource | 'reserved'
}

const EVENT_STREAM = /^\s*text\/event-stream/i
/** JSON and NDJSON (Ollama's native stream): read for counts and generated text. */
const JSON_TYPE = /json/i
const USAGE_NULL = /,\s*"usage"\s*:\s*null/g
const NO_CHOICES = /"choices"\s*:\s*\[\s*\]/

/**
 * Reads what one forwarded answer really cost while it passes through (`UsageScanner`): the
 * OpenAI-style `usage` of a JSON answer or of a stream's usage chunk, or an engine's native counts
 * (llama.cpp, TGI, Ollama). When the request asked for a stream without usage, the forwarded body
 * asks for it (`stream_options.include_usage`) and the usage-only event and the `"usage": null`
 * fields are taken out of what the client receives. Without counts, the generated text is counted
 * at the estimate's characters per token.
 */
export class UsageObserver implements ForwardObserver {
  readonly #estimate: RequestEstimate
  readonly #inject: boolean
  readonly #scanner = new UsageScanner()
  readonly #decoder = new StringDecoder('utf8')
  #strip = false
  #status = 0
  #sse = false
  #scan = false
  #bodyBytes = 0
  #pending = ''
  #complete = false
  #abandoned = false

  constructor(estimate: RequestEstimate) {
    this.#estimate = estimate
    this.#inject = estimate.stream && !estimate.includeUsage && estimate.json
  }

  requestBody(body: Buffer): Buffer | undefined {
    return this.#inject ? askForUsage(body) : undefined
  }

  responseStart(status: number, headers: IncomingHttpHeaders): void {
    this.#status = status
    const type = headers['content-type']
    this.#sse = typeof type === 'string' && EVENT_STREAM.test(type)
    this.#scan = this.#sse || (typeof type === 'string' && JSON_TYPE.test(type))
    // A stream of announced length cannot lose bytes on the way.
    this.#strip = this.#inject && this.#sse && headers['content-length'] === undefined
  }

  responseData(chunk: Buffer): Buffer | undefined {
    this.#bodyBytes += chunk.length
    if (!this.#scan) return undefined
    const decoded = this.#decoder.write(chunk)
    if (!this.#sse) {
      this.#scanner.feed(decoded)
      return undefined
    }
    const text = this.#pending + decoded
    let start = 0
    let out = this.#strip ? '' : undefined
    for (let end = text.indexOf('\n\n', start); end !== -1; end = text.indexOf('\n\n', start)) {
      const event = text.slice(start, end + 2)
      start = end + 2
      const keep = this.#readEvent(event)
      if (out !== undefined && keep) out += event.replace(USAGE_NULL, '')
    }
    this.#pending = text.slice(start)
    if (out === undefined) {
      // Passed through as is: only the unfinished event is carried over, to be read whole.
      return undefined
    }
    return Buffer.from(out)
  }

  /** Reads one event; false when it is the usage-only chunk the client did not ask for. */
  #readEvent(event: string): boolean {
    const before = this.#scanner.reportingValues
    this.#scanner.feed(event)
    if (this.#scanner.reportingValues === before) return true
    return !(this.#scanner.reported!.promptTokens !== undefined && NO_CHOICES.test(event))
  }

  abandoned(): void {
    this.#abandoned = true
  }

  responseEnd(complete: boolean): void {
    this.#complete = complete
    if (!this.#scan) return
    this.#scanner.feed(this.#pending + this.#decoder.end())
    this.#pending = ''
  }

  /** The prompt and completion counts the backend reported, either undefined when it did not. */
  #counts(): { prompt: number | undefined; completion: number | undefined } {
    const r = this.#scanner.reported
    if (r === undefined) return { prompt: undefined, completion: undefined }
    return {
      // TGI sends an empty `prefill` unless asked for it: no prompt is 0 tokens long.
      prompt: r.promptTokens ?? r.tokensEvaluated ?? r.promptEvalCount ?? (r.prefill || undefined),
      completion: r.completionTokens ?? r.tokensPredicted ?? r.evalCount ?? r.generatedTokens,
    }
  }

  /** The backend's own counts, when it reported both; an estimate is not reported. */
  reportTokens(events: RequestEvents): void {
    if (this.#scanner.reported?.invalid === true) return
    const { prompt, completion } = this.#counts()
    if (prompt === undefined || completion === undefined) return
    events.tokens(prompt, completion)
  }

  /** Whether the response reached its end (false: cut, or the client went away). */
  get complete(): boolean {
    return this.#complete
  }

  /**
   * What the request is charged, `reserved` being what it holds now:
   * - the backend's counts (prompt and completion) when it reported both;
   * - the reservation when a count it reported is no whole number >= 0, or when the client left a
   *   request the backend had before its counts arrived (a JSON answer is generated whole even
   *   when nobody waits for it; a stream stops where the client left and is estimated instead,
   *   the prompt alone when it left before the first byte);
   * - a refund when no backend answered, or the answer was an error that generated nothing;
   * - else an estimate: the prompt (reported or estimated) plus the generated text (reported or
   *   counted at the estimate's characters per token).
   */
  measured(reserved: number): MeasuredUsage {
    if (this.#scanner.reported?.invalid === true) return { tokens: reserved, source: 'reserved' }
    const { prompt, completion } = this.#counts()
    if (prompt !== undefined && completion !== undefined)
      return { tokens: prompt + completion, source: 'usage' }
    const chars = this.#scanner.generatedChars
    if (completion === undefined) {
      if (this.#status >= 400 && chars === 0) return { tokens: 0, source: 'refund' }
      if (this.#abandoned) {
        // A stream stops where its client left (before its first byte: after the prompt).
        const stream = this.#sse || (this.#status === 0 && this.#estimate.stream)
        if (!stream) return { tokens: reserved, source: 'reserved' }
      } else if (this.#status === 0) return { tokens: 0, source: 'refund' }
    }
    const generated =
      completion ??
      (this.#scan
        ? Math.max(this.#scanner.textValues, tokensForChars(chars))
        : tokensForChars(this.#bodyBytes))
    return { tokens: (prompt ?? this.#estimate.promptTokens) + generated, source: 'estimate' }
  }
}
