import {
  decodeString,
  forEachMember,
  hasEscape,
  InvalidJsonBodyError,
  jsonTextStart,
  OPEN_BRACE,
} from '../../forward/json-scan.js'
import { CHARS_PER_TOKEN, isTextField, schemaChars, textValue } from './prompt-chars.js'

/**
 * What a request is expected to cost before it runs, read from its body the way the engine will
 * read it: the prompt at `CHARS_PER_TOKEN` characters (UTF-8 bytes) a token over every field the
 * engine puts into the prompt, plus the answer's cap times the answers asked for. The gateway does
 * not know the backend's tokenizer, and the estimate is replaced by the backend's own count
 * afterwards (an overrun is carried into the next window), so a tokenizer's exactness would buy
 * little for its CPU on every request.
 *
 * The body is scanned, never parsed whole: the cost is one pass over its bytes, however large or
 * deeply nested (`json-scan.ts`).
 */
export { CHARS_PER_TOKEN }

/** The largest answer cap a request may ask for; no model's context comes near. */
export const MAX_TOKENS_FIELD = 10_000_000
/** The most answers (`n`, `best_of`) one request may ask for. */
export const MAX_CHOICES_FIELD = 1_000

export interface RequestEstimate {
  readonly promptTokens: number
  /** The answer's cap times the number of answers generated (`n`, `best_of`). */
  readonly completionTokens: number
  /** The request asked for an event stream. */
  readonly stream: boolean
  /** The stream asked for a usage chunk itself (`stream_options.include_usage`). */
  readonly includeUsage: boolean
  /** The body is a JSON object (so a stream can be asked for its usage). */
  readonly json: boolean
}

/** A token count field the gateway cannot read as the engine would: answered with 400. */
export class InvalidTokenFieldError extends InvalidJsonBodyError {
  override readonly name = 'InvalidTokenFieldError'
  override readonly code = 'invalid_token_field'
}

/** Tokens for `chars` characters of text, rounded up. */
export function tokensForChars(chars: number): number {
  return Math.ceil(chars / CHARS_PER_TOKEN)
}

const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/

/**
 * A count field's value as the engine reads it (a JSON number with an integral value; Python
 * reads `500.0` and `5e2` as 500), undefined for `null`. Throws for anything else: a string
 * (`"5000"`, which pydantic would coerce), a fraction, a negative, `NaN`, a huge value.
 */
function countField(body: Buffer, start: number, end: number, name: string, max: number): number | undefined {
  // No number an engine reads as an integer in range is longer than this.
  const text = body.toString('latin1', start, Math.min(end, start + 40))
  if (text === 'null') return undefined
  const value = end - start <= 40 && NUMBER.test(text) ? Number(text) : Number.NaN
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new InvalidTokenFieldError(
      `\`${name}\` must be an integer from 0 to ${max} (a JSON number, not a string), not ${text.slice(0, 40)}`,
    )
  }
  return value
}

/**
 * The key at `start`..`end` (quotes included) as a string, escapes decoded, when it is short
 * enough to be one the estimate reads: `max_completion_tokens` written wholly in `\u` escapes
 * is 128 bytes.
 */
function keyOf(body: Buffer, start: number, end: number): string | undefined {
  if (end - start > 160) return undefined
  return hasEscape(body, start, end)
    ? decodeString(body, start, end)
    : body.toString('latin1', start + 1, end - 1)
}

interface Counts {
  maxCompletionTokens?: number | undefined
  maxTokens?: number | undefined
  maxOutputTokens?: number | undefined
  nPredict?: number | undefined
  sglangMaxNewTokens?: number | undefined
  sglangN?: number | undefined
  maxNewTokens?: number | undefined
  numPredict?: number | undefined
  n?: number | undefined
  bestOf?: number | undefined
  tgiBestOf?: number | undefined
}

/** Reads the members of a nested object (`parameters`, `options`, `stream_options`) by name. */
function readObject(body: Buffer, at: number, read: (key: string, start: number, end: number) => void): void {
  if (body[at] !== OPEN_BRACE) return
  forEachMember(body, at, (keyStart, keyEnd, start, end) => {
    const key = keyOf(body, keyStart, keyEnd)
    if (key !== undefined) read(key, start, end)
  })
}

function isTrue(body: Buffer, start: number, end: number): boolean {
  return end - start === 4 && body.toString('latin1', start, end) === 'true'
}

/**
 * The answer's cap as the engines read it: vLLM's `max_completion_tokens or max_tokens` (0 is
 * falsy there, so it falls through; `max_output_tokens` in the Responses API), llama.cpp's
 * `n_predict`, TGI's `parameters.max_new_tokens`, SGLang's `sampling_params.max_new_tokens`,
 * Ollama's `options.num_predict`; the largest of those present, else the default.
 */
function answerCap(c: Counts, defaultMaxTokens: number): number {
  let cap = -1
  for (const native of [c.nPredict, c.maxNewTokens, c.sglangMaxNewTokens, c.numPredict])
    if (native !== undefined) cap = Math.max(cap, native)
  const openai = c.maxCompletionTokens || c.maxTokens || c.maxOutputTokens
  if (openai || cap < 0) cap = Math.max(cap, openai || defaultMaxTokens)
  return cap
}

/** The estimate for a raw body, or one a body parser already parsed (read from its JSON text). */
export function estimateRequest(body: unknown, defaultMaxTokens: number): RequestEstimate {
  let bytes: Buffer | undefined
  if (Buffer.isBuffer(body)) bytes = body
  else if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    try {
      bytes = Buffer.from(JSON.stringify(body))
    } catch {
      bytes = undefined
    }
  }
  const counts: Counts = {}
  const prompt = new Map<string, number>()
  let stream = false
  let includeUsage = false
  let key: string | undefined
  let text = 0
  // A text field is read while its end is found: one pass over the largest part of the body.
  const measure = (keyStart: number, keyEnd: number, at: number): number | undefined => {
    key = keyOf(bytes!, keyStart, keyEnd)
    if (key === undefined || !isTextField(key)) return undefined
    const value = textValue(bytes!, at)
    text = value.chars
    return value.end
  }
  const json =
    bytes !== undefined &&
    forEachMember(
      bytes,
      jsonTextStart(bytes),
      (_keyStart, _keyEnd, start, end) => {
        const b = bytes!
        if (key === undefined) return
        switch (key) {
          case 'max_completion_tokens':
            counts.maxCompletionTokens = countField(b, start, end, key, MAX_TOKENS_FIELD)
            return
          case 'max_tokens':
            counts.maxTokens = countField(b, start, end, key, MAX_TOKENS_FIELD)
            return
          case 'max_output_tokens':
            counts.maxOutputTokens = countField(b, start, end, key, MAX_TOKENS_FIELD)
            return
          case 'n_predict':
            counts.nPredict = countField(b, start, end, key, MAX_TOKENS_FIELD)
            return
          case 'n':
            counts.n = countField(b, start, end, key, MAX_CHOICES_FIELD)
            return
          case 'best_of':
            counts.bestOf = countField(b, start, end, key, MAX_CHOICES_FIELD)
            return
          // A repeated object counts as its last, as the parser keeps only that one.
          case 'parameters':
            counts.maxNewTokens = undefined
            counts.tgiBestOf = undefined
            readObject(b, start, (k, s, e) => {
              if (k === 'max_new_tokens')
                counts.maxNewTokens = countField(b, s, e, `parameters.${k}`, MAX_TOKENS_FIELD)
              else if (k === 'best_of')
                counts.tgiBestOf = countField(b, s, e, `parameters.${k}`, MAX_CHOICES_FIELD)
            })
            return
          case 'sampling_params':
            counts.sglangMaxNewTokens = undefined
            counts.sglangN = undefined
            readObject(b, start, (k, s, e) => {
              if (k === 'max_new_tokens')
                counts.sglangMaxNewTokens = countField(b, s, e, `sampling_params.${k}`, MAX_TOKENS_FIELD)
              else if (k === 'n')
                counts.sglangN = countField(b, s, e, `sampling_params.${k}`, MAX_CHOICES_FIELD)
            })
            return
          case 'options':
            counts.numPredict = undefined
            readObject(b, start, (k, s, e) => {
              if (k === 'num_predict')
                counts.numPredict = countField(b, s, e, `options.${k}`, MAX_TOKENS_FIELD)
            })
            return
          case 'stream':
            stream = isTrue(b, start, end)
            return
          case 'stream_options':
            includeUsage = false
            readObject(b, start, (k, s, e) => {
              if (k === 'include_usage') includeUsage = isTrue(b, s, e)
            })
            return
          default: {
            // A repeated key counts once, as the parser keeps only the last.
            const chars = isTextField(key) ? text : schemaChars(key, start, end)
            if (chars !== undefined) prompt.set(key, chars)
          }
        }
      },
      measure,
    )
  if (!json)
    return { promptTokens: 0, completionTokens: defaultMaxTokens, stream: false, includeUsage: false, json }
  let chars = 0
  for (const value of prompt.values()) chars += value
  const answers = Math.max(1, counts.n ?? 1, counts.bestOf ?? 1, counts.tgiBestOf ?? 1, counts.sglangN ?? 1)
  return {
    promptTokens: tokensForChars(chars),
    completionTokens: answerCap(counts, defaultMaxTokens) * answers,
    stream,
    includeUsage,
    json,
  }
}
