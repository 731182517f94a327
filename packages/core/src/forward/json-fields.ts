import type { IncomingMessage } from 'node:http'
import {
  BACKSLASH,
  CLOSE_BRACE,
  CLOSE_BRACKET,
  decodeString,
  equalsKey,
  forEachMember,
  jsonTextStart,
  OPEN_BRACE,
  OPEN_BRACKET,
  QUOTE,
} from './json-scan.js'

const JSON_TYPE = /^\s*application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i

/**
 * Whether the body is read as JSON: its Content-Type says so, or it has none, since the engines'
 * FastAPI front ends (vLLM, SGLang) then parse it as JSON all the same.
 */
export function isJsonRequest(req: IncomingMessage): boolean {
  const type = req.headers['content-type']
  return type === undefined || JSON_TYPE.test(type)
}

/** The top-level fields of a JSON request body the gateway routes and relays by. */
export interface TopLevelFields {
  /** The last top-level `model` string, as a JSON parser would keep it. */
  model: string | undefined
  /** Byte range of that `model` value (quotes included); -1 when there is none. */
  modelStart: number
  modelEnd: number
  /** Top-level `stream: true`: an OpenAI-style streamed completion was asked for. */
  stream: boolean
  /**
   * Where the prompt's value lies in the body (`messages`, else `prompt`, else `input`): byte
   * offsets, so a reader parses that value alone, if at all.
   */
  prompt: { key: PromptKey; start: number; end: number } | undefined
}

export type PromptKey = 'messages' | 'prompt' | 'input'

export { InvalidJsonBodyError, UnsupportedJsonEncodingError } from './json-scan.js'

const MODEL = Buffer.from('model')
const STREAM = Buffer.from('stream')
const TRUE = Buffer.from('true')
const PROMPT_KEYS: readonly [PromptKey, Buffer, number][] = [
  ['messages', Buffer.from('messages'), 3],
  ['prompt', Buffer.from('prompt'), 2],
  ['input', Buffer.from('input'), 1],
]

/**
 * Reads `model` and `stream` from the top level of a JSON body in one pass over its bytes, without
 * building the document: a 10 MB body of nested arrays costs a scan, not a parse that blocks the
 * event loop. Values other than those two are skipped, not validated (the backend does that).
 * A body that is not a JSON object has neither field. Throws `InvalidJsonBodyError` when the
 * object's structure breaks off, `UnsupportedJsonEncodingError` (415) for UTF-16 or UTF-32 JSON.
 */
export function topLevelFields(body: Buffer): TopLevelFields {
  const fields: TopLevelFields = {
    model: undefined,
    modelStart: -1,
    modelEnd: -1,
    stream: false,
    prompt: undefined,
  }
  let promptRank = 0
  forEachMember(body, jsonTextStart(body), (keyStart, keyEnd, at, end) => {
    if (equalsKey(body, keyStart, keyEnd, MODEL)) {
      fields.model = body[at] === QUOTE ? decodeString(body, at, end) : undefined
      fields.modelStart = fields.model === undefined ? -1 : at
      fields.modelEnd = fields.model === undefined ? -1 : end
    } else if (equalsKey(body, keyStart, keyEnd, STREAM)) {
      fields.stream = end - at === TRUE.length && body.compare(TRUE, 0, TRUE.length, at, end) === 0
    } else if (promptRank < 3) {
      for (const [key, bytes, rank] of PROMPT_KEYS) {
        if (rank > promptRank && equalsKey(body, keyStart, keyEnd, bytes)) {
          fields.prompt = { key, start: at, end }
          promptRank = rank
          break
        }
      }
    }
  })
  return fields
}

/**
 * Whether arrays and objects nest deeper than `maxDepth` anywhere in the body, in one pass over
 * its bytes. `JSON.parse` of a deeply nested body costs far more than its size suggests (about a
 * second per megabyte of `[[[…]]]`); a parser can refuse or skip such a body by asking this first.
 */
export function nestsDeeperThan(body: Buffer, maxDepth: number): boolean {
  let depth = 0
  for (let i = 0; i < body.length; i++) {
    const byte = body[i]!
    if (byte === QUOTE) {
      // Unterminated: the parser will refuse it anyway.
      for (i++; i < body.length; i++) {
        const inner = body[i]!
        if (inner === BACKSLASH) i++
        else if (inner === QUOTE) break
      }
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      if (++depth > maxDepth) return true
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      depth--
    }
  }
  return false
}
