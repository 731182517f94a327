import { describe, expect, it } from 'vitest'
import {
  describeLimit,
  LimitParseError,
  parseLimit,
  parseLimits,
  policyName,
  type RateLimitItem,
  type TimeUnit,
} from '../src/limits/notation.js'

const SECOND = 1_000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

type Expected = [amount: number, multiples: number, unit: TimeUnit, windowMs: number]

const item = ([amount, multiples, unit, windowMs]: Expected): RateLimitItem => ({
  amount,
  multiples,
  unit,
  windowMs,
})

const valid: Array<[text: string, expected: Expected[]]> = [
  // The forms flask-limiter's documentation uses.
  [
    '200 per day, 50 per hour',
    [
      [200, 1, 'day', DAY],
      [50, 1, 'hour', HOUR],
    ],
  ],
  ['10/minute', [[10, 1, 'minute', MINUTE]]],
  ['1 per 5 seconds', [[1, 5, 'second', 5 * SECOND]]],
  [
    '100/day, 500/7days',
    [
      [100, 1, 'day', DAY],
      [500, 7, 'day', 7 * DAY],
    ],
  ],
  ['10 per minute', [[10, 1, 'minute', MINUTE]]],
  ['1 per second', [[1, 1, 'second', SECOND]]],
  ['100 per hour', [[100, 1, 'hour', HOUR]]],
  ['5 per month', [[5, 1, 'month', 30 * DAY]]],
  ['5 per year', [[5, 1, 'year', 360 * DAY]]],
  ['2 per 3 months', [[2, 3, 'month', 90 * DAY]]],
  ['2 per 2 years', [[2, 2, 'year', 720 * DAY]]],
  // Case and plurals.
  ['5 PER Second', [[5, 1, 'second', SECOND]]],
  ['5 Per SECONDS', [[5, 1, 'second', SECOND]]],
  ['5/MiNuTeS', [[5, 1, 'minute', MINUTE]]],
  ['1 per 1 days', [[1, 1, 'day', DAY]]],
  ['3 per 2 hour', [[3, 2, 'hour', 2 * HOUR]]],
  ['1 per 1 second', [[1, 1, 'second', SECOND]]],
  // Whitespace is optional around every token, as in `limits`.
  ['10 / 2 hours', [[10, 2, 'hour', 2 * HOUR]]],
  ['10/2hours', [[10, 2, 'hour', 2 * HOUR]]],
  ['10perminute', [[10, 1, 'minute', MINUTE]]],
  ['10 per5minutes', [[10, 5, 'minute', 5 * MINUTE]]],
  ['10per 5 minutes', [[10, 5, 'minute', 5 * MINUTE]]],
  ['  10   per   minute  ', [[10, 1, 'minute', MINUTE]]],
  ['\t10\tper\t3\tdays\n', [[10, 3, 'day', 3 * DAY]]],
  ['\r\n7 / hour\r\n', [[7, 1, 'hour', HOUR]]],
  // All three separators, with and without spaces.
  [
    '1/second|2/minute',
    [
      [1, 1, 'second', SECOND],
      [2, 1, 'minute', MINUTE],
    ],
  ],
  [
    '3/minute; 100/day',
    [
      [3, 1, 'minute', MINUTE],
      [100, 1, 'day', DAY],
    ],
  ],
  [
    '1/second;2/minute|3/hour,4/day',
    [
      [1, 1, 'second', SECOND],
      [2, 1, 'minute', MINUTE],
      [3, 1, 'hour', HOUR],
      [4, 1, 'day', DAY],
    ],
  ],
  [
    '1 per second , 2 per minute',
    [
      [1, 1, 'second', SECOND],
      [2, 1, 'minute', MINUTE],
    ],
  ],
  // Order is kept, duplicates are kept.
  [
    '50 per hour, 200 per day',
    [
      [50, 1, 'hour', HOUR],
      [200, 1, 'day', DAY],
    ],
  ],
  [
    '10/minute, 10/minute',
    [
      [10, 1, 'minute', MINUTE],
      [10, 1, 'minute', MINUTE],
    ],
  ],
  // Leading zeros are plain decimal, as Python's int() reads them.
  ['010 per 05 minutes', [[10, 5, 'minute', 5 * MINUTE]]],
  // Large but safe values.
  ['1000000 per 1000 seconds', [[1_000_000, 1000, 'second', 1000 * SECOND]]],
  ['999999999999999 per second', [[999_999_999_999_999, 1, 'second', SECOND]]],
  // Unicode whitespace is whitespace, as `limits` (Python's \s) reads it.
  ['10\u00a0per\u3000minute', [[10, 1, 'minute', MINUTE]]],
  [
    '\u2003200 per day,\u202f50 per hour\u2029',
    [
      [200, 1, 'day', DAY],
      [50, 1, 'hour', HOUR],
    ],
  ],
  ['10\u0085/\u001fminute', [[10, 1, 'minute', MINUTE]]],
  ['1 per 9007199254740 seconds', [[1, 9_007_199_254_740, 'second', 9_007_199_254_740_000]]],
  ['1 per 100000 years', [[1, 100_000, 'year', 100_000 * 360 * DAY]]],
]

describe('parseLimits: valid notation', () => {
  it.each(valid)('%j', (text, expected) => {
    expect(parseLimits(text)).toEqual(expected.map(item))
  })

  it('returns frozen items', () => {
    const [first] = parseLimits('10/minute')
    expect(Object.isFrozen(first)).toBe(true)
  })
})

const invalid: Array<[text: string, expected: string]> = [
  // Blank input and empty items.
  ['', 'expected a limit such as "10 per minute"'],
  ['   ', 'expected a limit such as'],
  ['\n\t', 'expected a limit such as'],
  ['10/minute,', 'item 2 of 2 is empty'],
  [', 10/minute', 'item 1 of 2 is empty'],
  ['10/minute,,5/hour', 'item 2 of 3 is empty'],
  ['10/minute; ', 'item 2 of 2 is empty'],
  ['|10/minute', 'item 1 of 2 is empty'],
  [',', 'item 1 of 2 is empty'],
  [' ; | ', 'item 1 of 3 is empty'],
  // Zero counts and windows.
  ['1 per 0 seconds', 'the window must be at least 1 second (write e.g. "1 per 5 seconds")'],
  ['1/0minute', 'the window must be at least 1 minute'],
  ['1 per 000 hours', 'the window must be at least 1 hour'],
  ['0 per minute', 'the count must be at least 1 (write e.g. "1 per minute")'],
  ['0/5 days', 'the count must be at least 1 (write e.g. "1 per 5 days")'],
  ['00 per hour', 'the count must be at least 1'],
  // Non-ASCII digits.
  ['١٠ per minute', 'the count must be written with the ASCII digits 0-9'],
  ['１０ per minute', 'the count must be written with the ASCII digits 0-9'],
  ['1٠ per minute', 'the count must be written with the ASCII digits 0-9'],
  ['1 per ５ minutes', 'the window length must be written with the ASCII digits 0-9'],
  ['१० per minute', 'ASCII digits'],
  ['𝟏𝟎 per minute', 'ASCII digits'],
  // Decimals, signs and other number spellings.
  ['1.5 per minute', 'the count must be a whole number, found "1.5"'],
  ['.5 per minute', 'the count must be a whole number, found ".5"'],
  ['1 per 1.5 minutes', 'the window length must be a whole number, found "1.5"'],
  ['1 per .5 minutes', 'the window length must be a whole number'],
  ['-1 per minute', 'the count cannot be negative'],
  ['−1 per minute', 'the count cannot be negative'],
  ['1 per -5 minutes', 'the window length cannot be negative'],
  ['+1 per minute', 'write the count without a sign'],
  ['1 per +5 minutes', 'write the window length without a sign'],
  ['1e3 per minute', 'expected "per" or "/" after the count 1'],
  ['0x10 per minute', 'expected "per" or "/" after the count 0'],
  ['1_000 per minute', 'expected "per" or "/" after the count 1'],
  ['ten per minute', 'expected a count first'],
  // Missing pieces.
  ['per minute', 'expected a count first'],
  ['/minute', 'expected a count first'],
  ['minute', 'expected a count first'],
  ['10', 'expected "per" or "/" after the count 10, found the end of the item'],
  ['10 minute', 'expected "per" or "/" after the count 10, found "minute"'],
  ['10 per', 'expected a unit at the end'],
  ['10/', 'expected a unit at the end'],
  ['10 per 5', 'expected a unit at the end'],
  ['10 per per minute', 'unknown unit "per"'],
  ['10 // minute', 'unknown unit "/"'],
  // Unknown units.
  ['10 per fortnight', 'unknown unit "fortnight"; expected second, minute, hour, day, month or year'],
  ['10 per minutely', 'unknown unit "minutely"'],
  ['10/s', 'unknown unit "s"'],
  ['10/sec', 'unknown unit "sec"'],
  ['10/min', 'unknown unit "min"'],
  ['10/h', 'unknown unit "h"'],
  ['10/week', 'unknown unit "week"'],
  ['10 per minutess', 'unknown unit "minutess"'],
  ['10 per minute!', 'unknown unit "minute!"'],
  ['10 per mínute', 'unknown unit "mínute"'],
  ['10 per 5 5 minutes', 'unknown unit "5"'],
  // Trailing text, including limits written without a separator.
  ['10 per minute please', 'unexpected "please" after the unit'],
  [
    '200 per day\n50 per hour',
    'unexpected "50 per hour" after the unit; separate limits with ",", ";" or "|"',
  ],
  ['10 per minute 5', 'unexpected "5" after the unit'],
  // `|` separates items, it is not a spelling of "per".
  ['100|day', 'item 1 of 2 ("100"): expected "per" or "/" after the count 100'],
  // Beyond safe integers.
  ['9007199254740992 per second', 'the count "9007199254740992" is too large'],
  ['99999999999999999999 per second', 'is too large (at most 9007199254740991)'],
  // A Structured Field Integer has at most 15 digits, so larger counts cannot be sent in RateLimit.
  ['1000000000000000 per second', 'the count 1000000000000000 is too large (at most 999999999999999'],
  // Characters that are not whitespace to `limits` either are named by code point, not shown as a space.
  ['10 per\u200bminute', 'unknown unit "\u200bminute" (U+200B)'],
  ['10\u200b/minute', '"\u200b/minute" (U+200B)'],
  ['10 per minute\ufeff', 'unknown unit "minute\ufeff" (U+FEFF)'],
  ['1 per 9007199254740992 seconds', 'the window length "9007199254740992" is too large'],
  ['1 per 9007199254741 seconds', 'the window of 9007199254741 seconds is too long'],
  ['1 per 300000000 years', 'the window of 300000000 years is too long'],
  // Multi-item strings name the bad item as well.
  ['200 per day, 50 per fortnight', 'item 2 of 2 ("50 per fortnight"): unknown unit "fortnight"'],
  ['1/second; 0/minute; 3/hour', 'item 2 of 3 ("0/minute"): the count must be at least 1'],
  ['1.5/minute | 2/hour', 'item 1 of 2 ("1.5/minute"): the count must be a whole number'],
]

describe('parseLimits: invalid notation', () => {
  it.each(invalid)('%j', (text, expected) => {
    const error = catchError(() => parseLimits(text))
    expect(error).toBeInstanceOf(LimitParseError)
    expect(error).toBeInstanceOf(Error)
    const parseError = error as LimitParseError
    expect(parseError.name).toBe('LimitParseError')
    expect(parseError.input).toBe(text)
    expect(parseError.message).toContain(`Invalid rate limit ${JSON.stringify(text)}`)
    expect(parseError.message).toContain(expected)
  })

  it('quotes only a short excerpt of a huge bad item besides the full input', () => {
    const text = `10 per ${'x'.repeat(1000)}`
    const error = catchError(() => parseLimits(`1/second, ${text}`)) as LimitParseError
    expect(error.message).toContain(JSON.stringify(`1/second, ${text}`))
    expect(error.message).toContain(`unknown unit "${'x'.repeat(40)}…"`)
  })

  it.each([
    [undefined, 'undefined', 'undefined'],
    [null, 'null', 'null'],
    [42, '42', 'number'],
    [true, 'true', 'boolean'],
    [['10/minute'], '10/minute', 'object'],
    [{ limit: '10/minute' }, '[object Object]', 'object'],
    [Symbol('x'), 'Symbol(x)', 'symbol'],
    [10n, '10', 'bigint'],
    [Object.create(null), '[object Object]', 'object'],
  ])('rejects the non-string %s', (value, shown, type) => {
    const error = catchError(() => parseLimits(value as unknown as string))
    expect(error).toBeInstanceOf(LimitParseError)
    const parseError = error as LimitParseError
    expect(parseError.input).toBe(shown)
    expect(parseError.message).toBe(
      `Invalid rate limit ${shown} (${type}): expected a string such as "10 per minute" or "200 per day, 50 per hour"`,
    )
  })
})

describe('parseLimit', () => {
  it('returns the single item', () => {
    expect(parseLimit(' 5 per 2 hours ')).toEqual({
      amount: 5,
      multiples: 2,
      unit: 'hour',
      windowMs: 2 * HOUR,
    })
  })

  it('rejects several items', () => {
    const error = catchError(() => parseLimit('1/second, 2/day')) as LimitParseError
    expect(error).toBeInstanceOf(LimitParseError)
    expect(error.input).toBe('1/second, 2/day')
    expect(error.message).toBe(
      'Invalid rate limit "1/second, 2/day": expected exactly one limit such as "10 per minute", found 2',
    )
  })

  it.each(['', '10/minute,', '0/second', 'fast'])('passes on the parse error for %j', (text) => {
    const error = catchError(() => parseLimit(text)) as LimitParseError
    expect(error).toBeInstanceOf(LimitParseError)
    expect(error.message).toContain(JSON.stringify(text))
  })
})

describe('describeLimit', () => {
  it.each([
    ['50 per hour', '50 per hour'],
    ['1 per 5 seconds', '1 per 5 seconds'],
    ['500/7days', '500 per 7 days'],
    ['3 PER 2 MONTHS', '3 per 2 months'],
    ['1/year', '1 per year'],
  ])('%j -> %j', (text, described) => {
    const parsed = parseLimit(text)
    expect(describeLimit(parsed)).toBe(described)
    expect(parseLimit(describeLimit(parsed))).toEqual(parsed)
  })
})

describe('policyName', () => {
  it.each([
    ['50 per hour', '50-per-hour'],
    ['50 per 1 hour', '50-per-hour'],
    ['1 per 5 seconds', '1-per-5-seconds'],
    ['500/7days', '500-per-7-days'],
    ['200 per day', '200-per-day'],
    ['10 per 2 MINUTE', '10-per-2-minutes'],
    ['1/month', '1-per-month'],
    ['4 per 3 years', '4-per-3-years'],
  ])('%j -> %j', (text, name) => {
    const parsed = parseLimit(text)
    expect(policyName(parsed)).toBe(name)
    // Header-safe: usable as an sf-token and inside a quoted sf-string without escaping.
    expect(policyName(parsed)).toMatch(/^[0-9]+-per-([0-9]+-)?[a-z]+$/)
  })
})

describe('linear time on adversarial input', () => {
  // A generous bound: the point is that nothing backtracks, not how fast it is (see bench/).
  const BOUND_MS = 1_000

  it.each([
    ['"1" x 100000', '1'.repeat(100_000)],
    ['"1 per " x 20000', '1 per '.repeat(20_000)],
    ['", " x 50000', ', '.repeat(50_000)],
    ['spaces then a limit', `${' '.repeat(100_000)}1/second`],
    ['a limit then spaces then junk', `1 per second${' '.repeat(100_000)}x`],
    ['"0" x 100000 then a limit', `${'0'.repeat(100_000)}1 per second`],
    ['a huge unit', `1 per ${'s'.repeat(100_000)}`],
    ['decimal digits', `1.${'5'.repeat(100_000)} per second`],
    ['fullwidth digits', '１'.repeat(50_000)],
    ['per per per', 'per '.repeat(25_000)],
  ])('%s', (_label, text) => {
    const started = performance.now()
    try {
      parseLimits(text)
    } catch (error) {
      expect(error).toBeInstanceOf(LimitParseError)
    }
    expect(performance.now() - started).toBeLessThan(BOUND_MS)
  })

  it('parses 10000 valid items', () => {
    const text = Array.from({ length: 10_000 }, (_, i) => `${i + 1} per ${i + 1} seconds`).join(', ')
    const started = performance.now()
    const items = parseLimits(text)
    expect(performance.now() - started).toBeLessThan(BOUND_MS)
    expect(items).toHaveLength(10_000)
    expect(items[9_999]).toEqual({ amount: 10_000, multiples: 10_000, unit: 'second', windowMs: 10_000_000 })
  })

  it('accepts leading zeros without a length limit', () => {
    expect(parseLimit(`${'0'.repeat(100_000)}1 per second`)).toEqual({
      amount: 1,
      multiples: 1,
      unit: 'second',
      windowMs: SECOND,
    })
  })
})

function catchError(run: () => unknown): unknown {
  try {
    run()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}

// What the Python `limits` library (and so flask-limiter) does with the same strings, read from its
// parser: `^SINGLE([,;|]SINGLE)*$` with SINGLE = `\s*([0-9]+)\s*(/|\s*per\s*)\s*([0-9]+)*\s*(unit)s?\s*`,
// case-insensitive, `\s` being Python's Unicode whitespace and `[0-9]` ASCII only.
describe('agrees with limits, except where documented', () => {
  const bothAccept: [string, number, number, string][] = [
    ['1 per second', 1, 1, 'second'],
    ['1/SECOND', 1, 1, 'second'],
    ['10per minute', 10, 1, 'minute'],
    ['1 / 5 minutes', 1, 5, 'minute'],
    ['2 per 3 Days', 2, 3, 'day'],
    ['\u00a07/hour\u3000', 7, 1, 'hour'],
    ['5 per 01 year', 5, 1, 'year'],
  ]
  it.each(bothAccept)('accepts %j like limits', (text, amount, multiples, unit) => {
    expect(parseLimits(text)).toMatchObject([{ amount, multiples, unit }])
  })

  const bothReject = [
    '1 per',
    'per minute',
    '1 minute',
    '1.0/second',
    '-1/second',
    '+1/second',
    '1/second,',
    ',1/second',
    '1/second,,2/minute',
    '1 per fortnight',
    '1 per sec',
    '١/second',
    '1/second 2/minute',
  ]
  it.each(bothReject)('rejects %j like limits', (text) => {
    expect(() => parseLimits(text)).toThrow(LimitParseError)
  })

  // Where tollgate is stricter, on purpose (README, Notation): limits accepts these.
  it.each(['0/second', '1 per 0 seconds', '1000000000000000/second'])(
    'rejects %j, which limits accepts',
    (text) => {
      expect(() => parseLimits(text)).toThrow(LimitParseError)
    },
  )
})
