/**
 * Rate-limit notation as flask-limiter and the Python `limits` library write it:
 *
 *   [count] [per|/] [n] [second|minute|hour|day|month|year][s]
 *
 * case-insensitive, with optional whitespace around tokens, several limits separated by `,`, `;`
 * or `|` (e.g. `"200 per day, 50 per hour"`, `"10/minute"`, `"100/day, 500/7days"`).
 *
 * A month is 30 days and a year 360 days, as in `limits`, so a limit copied from a flask-limiter
 * app keeps its window here.
 *
 * Like `limits`, empty items (`"10/minute,"`), decimals, signs, non-ASCII digits and unknown units
 * are rejected, and Unicode whitespace (`\u00a0`, `\u3000` …) counts as whitespace. Stricter than
 * `limits` on purpose, because such a limit cannot do what it says: a count or window of 0 (which
 * `limits` accepts), and a count above 999 999 999 999 999, the largest integer a Structured Field
 * (RFC 9651) can carry in the `RateLimit` headers.
 *
 * The scanner is hand-written and touches each character a bounded number of times, so hostile or
 * accidental huge strings cannot stall startup.
 */

import { closestName } from '../validation.js'

export type TimeUnit = 'second' | 'minute' | 'hour' | 'day' | 'month' | 'year'

export interface RateLimitItem {
  /** Requests allowed per window, an integer >= 1. */
  readonly amount: number
  /** Window length in `unit`s, an integer >= 1 (1 when the notation omits it). */
  readonly multiples: number
  readonly unit: TimeUnit
  /** `multiples` times the unit length; month = 30 days, year = 360 days. */
  readonly windowMs: number
}

export class LimitParseError extends Error {
  /** The text that failed to parse (for a non-string, `String(value)`). */
  readonly input: string

  constructor(input: string, message: string) {
    super(message)
    this.name = 'LimitParseError'
    this.input = input
  }
}

const DAY_MS = 86_400_000

const UNIT_MS: ReadonlyMap<string, number> = new Map<TimeUnit, number>([
  ['second', 1_000],
  ['minute', 60_000],
  ['hour', 3_600_000],
  ['day', DAY_MS],
  ['month', 30 * DAY_MS],
  ['year', 360 * DAY_MS],
])

const UNIT_LIST = 'second, minute, hour, day, month or year (singular or plural)'
const EXAMPLES = '"10 per minute" or "200 per day, 50 per hour"'
const SEPARATORS = /[,;|]/
// Sticky so a single character can be tested in place without slicing the rest of the string.
const OTHER_DIGIT = /\p{Nd}/uy
// Excerpts keep messages readable when the offending text is huge; the full input is still quoted.
const EXCERPT_MAX = 40
/** RFC 9651 §3.3.1: an Integer has at most 15 digits. */
export const MAX_AMOUNT = 999_999_999_999_999

/** Parses one or more limits, returning them in the order written. */
export function parseLimits(text: string): RateLimitItem[] {
  if (typeof text !== 'string') throw notAString(text)
  const pieces = text.split(SEPARATORS)
  if (pieces.length === 1 && skipSpace(text, 0) === text.length) {
    throw new LimitParseError(text, `${heading(text)}: expected a limit such as ${EXAMPLES}`)
  }
  return pieces.map((piece, index) => parseItem(text, piece, index, pieces.length))
}

/** Parses text that must hold exactly one limit. */
export function parseLimit(text: string): RateLimitItem {
  const items = parseLimits(text)
  if (items.length !== 1) {
    throw new LimitParseError(
      text,
      `${heading(text)}: expected exactly one limit such as "10 per minute", found ${items.length}`,
    )
  }
  return items[0]!
}

/** In words, e.g. `"50 per hour"`, `"2 per 15 seconds"`; it parses back to the same item. */
export function describeLimit(item: RateLimitItem): string {
  return item.multiples === 1
    ? `${item.amount} per ${item.unit}`
    : `${item.amount} per ${item.multiples} ${item.unit}s`
}

/**
 * A token safe inside a header value (digits, lowercase letters and `-`), e.g. `"50-per-hour"`,
 * `"1-per-5-seconds"`, `"500-per-7-days"`; used to name windows in `RateLimit-Policy`.
 */
export function policyName(item: RateLimitItem): string {
  return item.multiples === 1
    ? `${item.amount}-per-${item.unit}`
    : `${item.amount}-per-${item.multiples}-${item.unit}s`
}

function parseItem(input: string, piece: string, index: number, count: number): RateLimitItem {
  const where = `item ${index + 1} of ${count}`
  const fail: (reason: string) => never = (reason) => {
    const item = count > 1 ? `: ${where} (${quote(piece.trim())})` : ''
    throw new LimitParseError(input, `${heading(input)}${item}: ${reason}`)
  }

  let pos = skipSpace(piece, 0)
  if (pos === piece.length) {
    // parseLimits has already rejected a blank input, so this is an empty item between separators.
    throw new LimitParseError(
      input,
      `${heading(input)}: ${where} is empty; remove the extra separator or put a limit such as "10 per minute" there`,
    )
  }

  const amountDigits = readNumber(piece, pos, 'the count', fail)
  if (amountDigits === undefined) {
    fail(`expected a count first, such as "10 per minute", found ${excerpt(piece, pos)}`)
  }
  pos = skipSpace(piece, amountDigits.end)

  if (piece.charCodeAt(pos) === 0x2f /* / */) {
    pos += 1
  } else if (piece.slice(pos, pos + 3).toLowerCase() === 'per') {
    pos += 3
  } else {
    fail(`expected "per" or "/" after the count ${amountDigits.value}, found ${excerpt(piece, pos)}`)
  }
  pos = skipSpace(piece, pos)

  const multiplesDigits = readNumber(piece, pos, 'the window length', fail)
  if (multiplesDigits !== undefined) pos = skipSpace(piece, multiplesDigits.end)

  const unitStart = pos
  while (pos < piece.length && !isSpace(piece.charCodeAt(pos))) pos += 1
  const word = piece.slice(unitStart, pos)
  if (word === '') fail(`expected a unit at the end: ${UNIT_LIST}`)
  const unit = toUnit(word)
  if (unit === undefined) {
    const guess = closestName(word.toLowerCase().replace(/s$/, ''), [...UNIT_MS.keys()])
    fail(`unknown unit ${quote(word)}${guess ? ` (did you mean "${guess}"?)` : ''}; expected ${UNIT_LIST}`)
  }

  pos = skipSpace(piece, pos)
  if (pos < piece.length) {
    fail(`unexpected ${excerpt(piece, pos)} after the unit; separate limits with ",", ";" or "|"`)
  }

  const amount = amountDigits.value
  const multiples = multiplesDigits?.value ?? 1
  const plural = `${unit}s`
  if (amount > MAX_AMOUNT) {
    fail(`the count ${amount} is too large (at most ${MAX_AMOUNT}, what the RateLimit headers can carry)`)
  }
  if (amount === 0) {
    const window = multiples === 1 ? unit : `${multiples} ${plural}`
    fail(`the count must be at least 1 (write e.g. "1 per ${window}")`)
  }
  if (multiples === 0) {
    fail(`the window must be at least 1 ${unit} (write e.g. "${amount} per 5 ${plural}")`)
  }
  const windowMs = multiples * UNIT_MS.get(unit)!
  if (!Number.isSafeInteger(windowMs)) {
    fail(`the window of ${multiples} ${plural} is too long to count in milliseconds`)
  }
  return Object.freeze({ amount, multiples, unit: unit, windowMs })
}

/**
 * Reads a run of ASCII digits at `pos`. Returns undefined when there is no number there at all,
 * and fails on near-misses (signs, decimals, other scripts' digits) so the message names the real
 * problem instead of a generic "expected ...".
 */
function readNumber(
  s: string,
  pos: number,
  what: string,
  fail: (reason: string) => never,
): { value: number; end: number } | undefined {
  const end = skipDigits(s, pos)

  if (end === pos) {
    const c = s.charCodeAt(pos)
    if (c === 0x2d /* - */ || c === 0x2212 /* − */) fail(`${what} cannot be negative`)
    if (c === 0x2b /* + */) fail(`write ${what} without a sign`)
    if (c === 0x2e /* . */ && isAsciiDigit(s.charCodeAt(pos + 1))) {
      fail(`${what} must be a whole number, found ${excerpt(s, pos, skipDigits(s, pos + 1))}`)
    }
    if (isOtherDigit(s, pos)) fail(`${what} must be written with the ASCII digits 0-9`)
    return undefined
  }

  if (s.charCodeAt(end) === 0x2e /* . */ && isAsciiDigit(s.charCodeAt(end + 1))) {
    fail(`${what} must be a whole number, found ${excerpt(s, pos, skipDigits(s, end + 1))}`)
  }
  if (isOtherDigit(s, end)) fail(`${what} must be written with the ASCII digits 0-9`)

  // Any digit string above MAX_SAFE_INTEGER rounds to 2^53 or more, so this check is exact.
  const value = Number(s.slice(pos, end))
  if (!Number.isSafeInteger(value)) {
    fail(`${what} ${excerpt(s, pos, end)} is too large (at most ${Number.MAX_SAFE_INTEGER})`)
  }
  return { value, end }
}

function toUnit(word: string): TimeUnit | undefined {
  const lower = word.toLowerCase()
  if (UNIT_MS.has(lower)) return lower as TimeUnit
  if (lower.endsWith('s') && UNIT_MS.has(lower.slice(0, -1))) return lower.slice(0, -1) as TimeUnit
  return undefined
}

function notAString(value: unknown): LimitParseError {
  let shown: string
  try {
    shown = String(value)
  } catch {
    shown = Object.prototype.toString.call(value)
  }
  const type = value === null ? 'null' : typeof value
  return new LimitParseError(
    shown,
    `Invalid rate limit ${shown} (${type}): expected a string such as ${EXAMPLES}`,
  )
}

// Past this, the message quotes the start of the input only: a 100 KB value must not turn every
// log line that carries the error into 100 KB. `LimitParseError.input` keeps the whole text.
const HEADING_INPUT_MAX = 4_096

function heading(input: string): string {
  if (input.length <= HEADING_INPUT_MAX) return `Invalid rate limit ${JSON.stringify(input)}`
  return `Invalid rate limit ${JSON.stringify(`${input.slice(0, 200)}…`)} (${input.length} characters)`
}

// An invisible or look-alike character (a zero-width space, a full-width letter) is named by its
// code point, or the message would show what looks like valid text.
const UNUSUAL = /[^\x20-\x7e]/u

function quote(text: string): string {
  const shown = text.length > EXCERPT_MAX ? `${text.slice(0, EXCERPT_MAX)}…` : text
  const unusual = UNUSUAL.exec(shown.endsWith('…') ? shown.slice(0, -1) : shown)?.[0]
  const named =
    unusual === undefined ? '' : ` (U+${unusual.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})`
  return JSON.stringify(shown) + named
}

function excerpt(s: string, from: number, to = s.length): string {
  return from >= s.length ? 'the end of the item' : quote(s.slice(from, to))
}

function skipDigits(s: string, pos: number): number {
  while (pos < s.length && isAsciiDigit(s.charCodeAt(pos))) pos += 1
  return pos
}

function skipSpace(s: string, pos: number): number {
  while (pos < s.length && isSpace(s.charCodeAt(pos))) pos += 1
  return pos
}

// What Python's `\s` (and so `limits`) matches in a str: ASCII whitespace, the separators
// U+001C-U+001F, U+0085, and Unicode's space separators and line/paragraph separators.
function isSpace(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)
  if (c < 0x85) return false
  return (
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  )
}

function isAsciiDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39
}

function isOtherDigit(s: string, pos: number): boolean {
  OTHER_DIGIT.lastIndex = pos
  return OTHER_DIGIT.test(s)
}
