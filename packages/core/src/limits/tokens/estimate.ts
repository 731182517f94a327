/**
 * What a request is expected to cost before it runs, from its JSON body: the prompt's text at
 * `CHARS_PER_TOKEN` characters a token, plus the answer's cap (`max_completion_tokens`,
 * `max_tokens`, or the configured default). The gateway does not know which tokenizer the
 * backend's model uses, and the estimate is replaced by the backend's own count afterwards, so a
 * tokenizer's exactness would buy little for its CPU on every request.
 */
export const CHARS_PER_TOKEN = 4

export interface RequestEstimate {
  readonly promptTokens: number
  readonly completionTokens: number
  /** The request asked for an event stream. */
  readonly stream: boolean
  /** The stream asked for a usage chunk itself (`stream_options.include_usage`). */
  readonly includeUsage: boolean
  /** The parsed body when it is a JSON object (so it can be sent again with usage asked for). */
  readonly json: Record<string, unknown> | undefined
}

function textLength(value: unknown): number {
  if (typeof value === 'string') return value.length
  if (Array.isArray(value)) {
    let total = 0
    for (const part of value) {
      if (typeof part === 'string') total += part.length
      else if (part !== null && typeof part === 'object') {
        const p = part as { text?: unknown; content?: unknown }
        total += textLength(p.text) + textLength(p.content)
      }
    }
    return total
  }
  return 0
}

/** Tokens for `chars` characters of text, rounded up. */
export function tokensForChars(chars: number): number {
  return Math.ceil(chars / CHARS_PER_TOKEN)
}

/** The estimate for a raw body (a Buffer, parsed here) or one a body parser already parsed. */
export function estimateRequest(body: unknown, defaultMaxTokens: number): RequestEstimate {
  let parsed: unknown = body
  if (Buffer.isBuffer(body)) {
    try {
      parsed = body.length === 0 ? undefined : JSON.parse(body.toString('utf8'))
    } catch {
      // Not JSON: the backend answers it as it sees fit; the default estimate applies.
      parsed = undefined
    }
  }
  const json =
    parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined
  if (json === undefined) {
    return { promptTokens: 0, completionTokens: defaultMaxTokens, stream: false, includeUsage: false, json }
  }
  let chars = textLength(json.prompt) + textLength(json.input)
  if (Array.isArray(json.messages)) {
    for (const message of json.messages) {
      if (message !== null && typeof message === 'object')
        chars += textLength((message as { content?: unknown }).content)
    }
  }
  const cap = json.max_completion_tokens ?? json.max_tokens
  const completionTokens =
    typeof cap === 'number' && Number.isSafeInteger(cap) && cap >= 0 ? cap : defaultMaxTokens
  const options = json.stream_options as { include_usage?: unknown } | undefined
  return {
    promptTokens: tokensForChars(chars),
    completionTokens,
    stream: json.stream === true,
    includeUsage: options !== null && typeof options === 'object' && options.include_usage === true,
    json,
  }
}
