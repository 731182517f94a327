import type { IncomingMessage } from 'node:http'

const JSON_TYPE = /^\s*application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i

/** Whether the request says its body is JSON. */
export function isJsonRequest(req: IncomingMessage): boolean {
  const type = req.headers['content-type']
  return type !== undefined && JSON_TYPE.test(type)
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

/** The body is not a JSON object the scanner could walk; answered with 400. */
export class InvalidJsonBodyError extends Error {
  override readonly name = 'InvalidJsonBodyError'
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COLON = 0x3a
const COMMA = 0x2c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const MODEL = Buffer.from('model')
const STREAM = Buffer.from('stream')
const TRUE = Buffer.from('true')
const PROMPT_KEYS: readonly [PromptKey, Buffer, number][] = [
  ['messages', Buffer.from('messages'), 3],
  ['prompt', Buffer.from('prompt'), 2],
  ['input', Buffer.from('input'), 1],
]

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09
}

function skipSpace(body: Buffer, at: number): number {
  while (at < body.length && isSpace(body[at]!)) at++
  return at
}

function invalid(at: number): never {
  throw new InvalidJsonBodyError(`the request body is not valid JSON (at byte ${at})`)
}

/** From the opening quote at `at`: the index just past the closing quote. */
function stringEnd(body: Buffer, at: number): number {
  for (let i = at + 1; i < body.length; i++) {
    const byte = body[i]!
    if (byte === BACKSLASH) i++
    else if (byte === QUOTE) return i + 1
  }
  return invalid(at)
}

function hasEscape(body: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (body[i] === BACKSLASH) return true
  return false
}

/** JSON strings may not hold raw control characters; a parser would refuse the whole body. */
function checkNoControlBytes(body: Buffer, start: number, end: number): void {
  for (let i = start; i < end; i++) if (body[i]! < 0x20) invalid(i)
}

/** The string between `start` (opening quote) and `end` (past the closing one), escapes decoded. */
function decodeString(body: Buffer, start: number, end: number): string {
  checkNoControlBytes(body, start, end)
  if (!hasEscape(body, start, end)) return body.toString('utf8', start + 1, end - 1)
  try {
    return JSON.parse(body.toString('utf8', start, end)) as string
  } catch {
    return invalid(start)
  }
}

function equalsKey(body: Buffer, start: number, end: number, key: Buffer): boolean {
  const length = end - start - 2
  if (length === key.length) return body.compare(key, 0, key.length, start + 1, end - 1) === 0
  // An escaped key (`"\u006dodel"`) is longer on the wire than its value.
  return (
    length > key.length && hasEscape(body, start, end) && decodeString(body, start, end) === key.toString()
  )
}

/**
 * From the first byte of a value at `at`: the index just past it. Nested arrays and objects are
 * skipped by counting brackets, never by recursion, so a deeply nested body costs one pass.
 */
function valueEnd(body: Buffer, at: number): number {
  const first = body[at]
  if (first === QUOTE) return stringEnd(body, at)
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0
    for (let i = at; i < body.length; i++) {
      const byte = body[i]!
      if (byte === QUOTE) i = stringEnd(body, i) - 1
      else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) depth++
      else if ((byte === CLOSE_BRACE || byte === CLOSE_BRACKET) && --depth === 0) return i + 1
    }
    return invalid(at)
  }
  let i = at
  while (i < body.length) {
    const byte = body[i]!
    if (byte === COMMA || byte === CLOSE_BRACE || isSpace(byte)) break
    i++
  }
  if (i === at) invalid(at)
  return i
}

/**
 * Reads `model` and `stream` from the top level of a JSON body in one pass over its bytes, without
 * building the document: a 10 MB body of nested arrays costs a scan, not a parse that blocks the
 * event loop. Values other than those two are skipped, not validated (the backend does that).
 * A body that is not a JSON object has neither field. Throws `InvalidJsonBodyError` when the
 * object's structure breaks off.
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
  let at = skipSpace(body, 0)
  if (body[at] !== OPEN_BRACE) return fields
  at = skipSpace(body, at + 1)
  if (body[at] === CLOSE_BRACE) return fields
  for (;;) {
    if (body[at] !== QUOTE) invalid(at)
    const keyStart = at
    const keyEnd = stringEnd(body, at)
    at = skipSpace(body, keyEnd)
    if (body[at] !== COLON) invalid(at)
    at = skipSpace(body, at + 1)
    const end = valueEnd(body, at)
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
    at = skipSpace(body, end)
    const next = body[at]
    if (next === CLOSE_BRACE) return fields
    if (next !== COMMA) invalid(at)
    at = skipSpace(body, at + 1)
  }
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
