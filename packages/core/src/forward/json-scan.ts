/**
 * A byte scanner for JSON request bodies: what the gateway reads of a body (model, stream flag,
 * prompt, token fields) it reads from the bytes, one pass, without building the document, so a
 * 10 MB body of nested arrays costs a scan, never a parse that blocks the event loop.
 *
 * It reads a body the way the engines behind the gateway do: Python's `json.loads(bytes)`
 * (vLLM, SGLang, TGI's and most FastAPI front ends) skips a UTF-8 byte order mark, so the scan
 * does too; it also decodes UTF-16 and UTF-32, which the gateway refuses (415) instead of reading
 * (`UnsupportedJsonEncodingError`), so no body is forwarded that it could not account for.
 * Values it does not read are skipped, not validated: a bare `NaN` that Python accepts and
 * `JSON.parse` refuses is skipped like any other literal.
 */

/** The body is not a JSON value the scanner could walk: 400, or 415 for a non-UTF-8 encoding. */
export class InvalidJsonBodyError extends Error {
  override readonly name: string = 'InvalidJsonBodyError'
  readonly status: 400 | 415 = 400
  readonly code: string = 'invalid_json'
}

/** A JSON body in UTF-16 or UTF-32: an engine may decode it, the gateway does not read it. */
export class UnsupportedJsonEncodingError extends InvalidJsonBodyError {
  override readonly name = 'UnsupportedJsonEncodingError'
  override readonly status = 415
  override readonly code = 'unsupported_json_encoding'
}

export const QUOTE = 0x22
export const BACKSLASH = 0x5c
export const COLON = 0x3a
export const COMMA = 0x2c
export const OPEN_BRACE = 0x7b
export const CLOSE_BRACE = 0x7d
export const OPEN_BRACKET = 0x5b
export const CLOSE_BRACKET = 0x5d

export function isSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09
}

export function skipSpace(body: Buffer, at: number, end = body.length): number {
  while (at < end && isSpace(body[at])) at++
  return at
}

export function invalid(at: number): never {
  throw new InvalidJsonBodyError(`the request body is not valid JSON (at byte ${at})`)
}

/** A byte that can open a JSON text: `{`, `[` or whitespace. */
function opensJson(byte: number | undefined): boolean {
  return byte === OPEN_BRACE || byte === OPEN_BRACKET || isSpace(byte)
}

/**
 * Where the JSON text starts: after a UTF-8 byte order mark, if any. Throws
 * `UnsupportedJsonEncodingError` for what Python's `json.detect_encoding` would read as UTF-16 or
 * UTF-32 JSON (a BOM, or a NUL in the first two bytes next to an opening character). Any other
 * body (a multipart upload, binary data) starts at 0 and is simply not a JSON object.
 */
export function jsonTextStart(body: Buffer): number {
  const b0 = body[0]
  const b1 = body[1]
  if (b0 === 0xef && b1 === 0xbb && body[2] === 0xbf) return 3
  const wide =
    (b0 === 0xfe && b1 === 0xff) ||
    (b0 === 0xff && b1 === 0xfe) ||
    (b0 === 0 && (opensJson(b1) || (b1 === 0 && (body[2] === 0 || body[2] === 0xfe)))) ||
    (opensJson(b0) && b1 === 0)
  if (wide) {
    throw new UnsupportedJsonEncodingError(
      'the request body is JSON in UTF-16 or UTF-32; send it in UTF-8 (RFC 8259)',
    )
  }
  return 0
}

/** From the opening quote at `at`: the index just past the closing quote. */
export function stringEnd(body: Buffer, at: number): number {
  for (let i = at + 1; i < body.length; i++) {
    const byte = body[i]!
    if (byte === BACKSLASH) i++
    else if (byte === QUOTE) return i + 1
  }
  return invalid(at)
}

export function hasEscape(body: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (body[i] === BACKSLASH) return true
  return false
}

/** The string between `start` (opening quote) and `end` (past the closing one), escapes decoded. */
export function decodeString(body: Buffer, start: number, end: number): string {
  // JSON strings may not hold raw control characters; a parser would refuse the whole body.
  for (let i = start; i < end; i++) if (body[i]! < 0x20) invalid(i)
  if (!hasEscape(body, start, end)) return body.toString('utf8', start + 1, end - 1)
  try {
    return JSON.parse(body.toString('utf8', start, end)) as string
  } catch {
    return invalid(start)
  }
}

/** Whether the string at `start`..`end` (quotes included) is `key`, escapes decoded. */
export function equalsKey(body: Buffer, start: number, end: number, key: Buffer): boolean {
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
export function valueEnd(body: Buffer, at: number, limit = body.length): number {
  const first = body[at]
  if (first === QUOTE) return stringEnd(body, at)
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0
    for (let i = at; i < limit; i++) {
      const byte = body[i]!
      if (byte === QUOTE) i = stringEnd(body, i) - 1
      else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) depth++
      else if ((byte === CLOSE_BRACE || byte === CLOSE_BRACKET) && --depth === 0) return i + 1
    }
    return invalid(at)
  }
  let i = at
  while (i < limit) {
    const byte = body[i]!
    if (byte === COMMA || byte === CLOSE_BRACE || byte === CLOSE_BRACKET || isSpace(byte)) break
    i++
  }
  if (i === at) invalid(at)
  return i
}

/** Called for each member of an object: the key's bytes (quotes included), then the value's. */
export type MemberVisitor = (keyStart: number, keyEnd: number, valueStart: number, valueEnd: number) => void

/**
 * Where a member's value ends, when the caller reads the value while finding its end (one pass
 * instead of two); undefined to have it skipped as usual.
 */
export type MemberMeasure = (keyStart: number, keyEnd: number, valueStart: number) => number | undefined

/**
 * Visits the members of the object that opens at `at` (a `{`), in order, duplicates included (a
 * JSON parser keeps the last). Returns false, visiting nothing, when no object opens there.
 * Throws `InvalidJsonBodyError` when the object's structure breaks off.
 */
export function forEachMember(
  body: Buffer,
  at: number,
  visit: MemberVisitor,
  measure?: MemberMeasure,
): boolean {
  at = skipSpace(body, at)
  if (body[at] !== OPEN_BRACE) return false
  at = skipSpace(body, at + 1)
  if (body[at] === CLOSE_BRACE) return true
  for (;;) {
    if (body[at] !== QUOTE) invalid(at)
    const keyStart = at
    const keyEnd = stringEnd(body, at)
    at = skipSpace(body, keyEnd)
    if (body[at] !== COLON) invalid(at)
    at = skipSpace(body, at + 1)
    const end = measure?.(keyStart, keyEnd, at) ?? valueEnd(body, at)
    visit(keyStart, keyEnd, at, end)
    at = skipSpace(body, end)
    const next = body[at]
    if (next === CLOSE_BRACE) return true
    if (next !== COMMA) invalid(at)
    at = skipSpace(body, at + 1)
  }
}
