import type { IncomingHttpHeaders } from 'node:http'
import type { ForwardObserver } from '../../forward/types.js'
import type { RequestEvents } from '../../observe/events.js'
import { type RequestEstimate, tokensForChars } from './estimate.js'
import { askForUsage } from './usage-request.js'

/** How the tokens a request is charged were found. */
export type UsageSource = 'usage' | 'estimate' | 'refund'

export interface MeasuredUsage {
  readonly tokens: number
  readonly source: UsageSource
}

const EVENT_STREAM = /^\s*text\/event-stream/i
const PROMPT_TOKENS = /"prompt_tokens"\s*:\s*(\d+)/g
const COMPLETION_TOKENS = /"completion_tokens"\s*:\s*(\d+)/g
const CONTENT = /"(?:content|text)"\s*:\s*"((?:[^"\\]|\\.)*)"/g
const USAGE_NULL = /,\s*"usage"\s*:\s*null/g
/** How much of a JSON answer's end is kept to find its `usage`, which OpenAI and vLLM put last. */
const JSON_TAIL_BYTES = 16 * 1024

function lastNumber(text: string, pattern: RegExp): number | undefined {
  let found: number | undefined
  pattern.lastIndex = 0
  for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) found = Number(m[1])
  return found
}

/**
 * Reads what one forwarded answer really cost while it passes through: the `usage` of a JSON
 * answer (from its last 16 KiB) or of an event stream's usage chunk. When the request asked for
 * a stream without usage, the forwarded body asks for it (`stream_options.include_usage`) and the
 * usage-only event and the `"usage": null` fields are taken out of what the client receives.
 * Without usage the streamed text is counted at the estimate's characters per token.
 */
export class UsageObserver implements ForwardObserver {
  readonly #estimate: RequestEstimate
  readonly #inject: boolean
  #strip = false
  #status = 0
  #sse = false
  #tail: Buffer[] = []
  #tailBytes = 0
  #bodyBytes = 0
  #pending = ''
  #promptTokens: number | undefined
  #completionTokens: number | undefined
  #generatedChars = 0
  #contentEvents = 0
  #complete = false

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
    // A stream of announced length cannot lose bytes on the way.
    this.#strip = this.#inject && this.#sse && headers['content-length'] === undefined
  }

  responseData(chunk: Buffer): Buffer | undefined {
    this.#bodyBytes += chunk.length
    if (!this.#sse) {
      this.#tail.push(chunk)
      this.#tailBytes += chunk.length
      while (this.#tail.length > 1 && this.#tailBytes - this.#tail[0]!.length >= JSON_TAIL_BYTES) {
        this.#tailBytes -= this.#tail.shift()!.length
      }
      return undefined
    }
    const text = this.#pending + chunk.toString('utf8')
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
    if (event.includes('"usage":{') || event.includes('"usage": {')) {
      const prompt = lastNumber(event, PROMPT_TOKENS)
      const completion = lastNumber(event, COMPLETION_TOKENS)
      if (prompt !== undefined && completion !== undefined) {
        this.#promptTokens = prompt
        this.#completionTokens = completion
        if (/"choices"\s*:\s*\[\s*\]/.test(event)) return false
      }
    }
    CONTENT.lastIndex = 0
    let counted = false
    for (let m = CONTENT.exec(event); m !== null; m = CONTENT.exec(event)) {
      if (m[1]!.length > 0) {
        this.#generatedChars += m[1]!.length
        counted = true
      }
    }
    if (counted) this.#contentEvents++
    return true
  }

  responseEnd(complete: boolean): void {
    this.#complete = complete
    if (!this.#sse && this.#tail.length > 0) {
      const text = Buffer.concat(this.#tail).toString('utf8')
      this.#tail = []
      const prompt = lastNumber(text, PROMPT_TOKENS)
      const completion = lastNumber(text, COMPLETION_TOKENS)
      if (prompt !== undefined && completion !== undefined) {
        this.#promptTokens = prompt
        this.#completionTokens = completion
      }
    }
  }

  /** The backend's own counts, when its answer carried a `usage`; an estimate is not reported. */
  reportTokens(events: RequestEvents): void {
    if (this.#promptTokens === undefined || this.#completionTokens === undefined) return
    events.tokens(this.#promptTokens, this.#completionTokens)
  }

  /** Whether the response reached its end (false: cut, or the client went away). */
  get complete(): boolean {
    return this.#complete
  }

  /**
   * What the request is charged: the backend's usage when it reported one; a refund when no
   * backend answered or the answer was an error that generated nothing; else an estimate of the
   * prompt plus the text streamed so far (a client that went away mid-stream pays for that).
   */
  measured(): MeasuredUsage {
    if (this.#promptTokens !== undefined && this.#completionTokens !== undefined) {
      return { tokens: this.#promptTokens + this.#completionTokens, source: 'usage' }
    }
    if (this.#status === 0 || (this.#status >= 400 && this.#generatedChars === 0)) {
      return { tokens: 0, source: 'refund' }
    }
    const generated = this.#sse
      ? Math.max(this.#contentEvents, tokensForChars(this.#generatedChars))
      : tokensForChars(this.#bodyBytes)
    return { tokens: this.#estimate.promptTokens + generated, source: 'estimate' }
  }
}
