import fc from 'fast-check'
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

const UNIT_MS: Record<TimeUnit, number> = {
  second: 1_000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
  month: 30 * 86_400_000,
  year: 360 * 86_400_000,
}
const UNITS = Object.keys(UNIT_MS) as TimeUnit[]

const space = fc.stringMatching(/^[ \t\n\r]{0,3}$/)

/** Upper- or lower-cases each letter independently. */
const anyCase = (word: string) =>
  fc
    .array(fc.boolean(), { minLength: word.length, maxLength: word.length })
    .map((upper) => [...word].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''))

interface Generated {
  text: string
  expected: RateLimitItem
}

const validItem: fc.Arbitrary<Generated> = fc
  .record({
    amount: fc.integer({ min: 1, max: 1_000_000 }),
    multiples: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
    unit: fc.constantFrom(...UNITS),
    plural: fc.boolean(),
    per: fc.constantFrom('per', '/'),
    spaces: fc.tuple(space, space, space, space, space),
  })
  .chain((r) =>
    fc
      .tuple(fc.constant(r), anyCase(r.per), anyCase(r.plural ? `${r.unit}s` : r.unit))
      .map(([r, per, unit]) => {
        const [s0, s1, s2, s3, s4] = r.spaces
        const window = r.multiples === undefined ? '' : `${r.multiples}${s3}`
        const multiples = r.multiples ?? 1
        return {
          text: `${s0}${r.amount}${s1}${per}${s2}${window}${unit}${s4}`,
          expected: { amount: r.amount, multiples, unit: r.unit, windowMs: multiples * UNIT_MS[r.unit] },
        }
      }),
  )

const separator = fc.tuple(space, fc.constantFrom(',', ';', '|'), space).map((parts) => parts.join(''))

const validList = fc.array(validItem, { minLength: 1, maxLength: 6 }).chain((items) =>
  fc.array(separator, { minLength: items.length - 1, maxLength: items.length - 1 }).map((seps) => ({
    text: items.map((it, i) => (i === 0 ? it.text : `${seps[i - 1]}${it.text}`)).join(''),
    expected: items.map((it) => it.expected),
  })),
)

/** Strings assembled from the grammar's own pieces, so many are nearly valid. */
const tokenSoup = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        ...UNITS,
        ...UNITS.map((u) => `${u}s`),
        'per',
        'PER',
        '/',
        ',',
        ';',
        '|',
        ' ',
        '\t',
        '\n',
        '0',
        '1',
        '.',
        '-',
        '+',
        'e',
        's',
        '١',
        '５',
        '𝟏',
        '−',
        '\u00a0',
        '9007199254740991',
        '9007199254740992',
        '99999999999999999999',
      ),
      fc.nat().map(String),
    ),
    { maxLength: 20 },
  )
  .map((parts) => parts.join(''))

function checkParsesOrRejects(text: string): void {
  let items: RateLimitItem[]
  try {
    items = parseLimits(text)
  } catch (error) {
    expect(error).toBeInstanceOf(LimitParseError)
    expect((error as LimitParseError).input).toBe(text)
    expect((error as LimitParseError).message).toContain(JSON.stringify(text))
    return
  }
  expect(items.length).toBeGreaterThan(0)
  for (const item of items) {
    expect(Number.isSafeInteger(item.amount) && item.amount >= 1 && item.amount < 1e15).toBe(true)
    expect(Number.isSafeInteger(item.multiples) && item.multiples >= 1).toBe(true)
    expect(UNITS).toContain(item.unit)
    expect(Number.isSafeInteger(item.windowMs) && item.windowMs > 0).toBe(true)
    expect(item.windowMs).toBe(item.multiples * UNIT_MS[item.unit])
  }
}

describe('notation properties', () => {
  it('parses generated valid items to the generated values', () => {
    fc.assert(
      fc.property(validItem, ({ text, expected }) => {
        expect(parseLimit(text)).toEqual(expected)
      }),
      { numRuns: 1000 },
    )
  })

  it('parses generated lists with any separators, in order', () => {
    fc.assert(
      fc.property(validList, ({ text, expected }) => {
        expect(parseLimits(text)).toEqual(expected)
      }),
      { numRuns: 500 },
    )
  })

  it('either parses to sound items or throws LimitParseError, for any string', () => {
    fc.assert(fc.property(fc.string(), checkParsesOrRejects), { numRuns: 1000 })
    fc.assert(fc.property(fc.string({ unit: 'grapheme' }), checkParsesOrRejects), { numRuns: 500 })
    fc.assert(fc.property(fc.string({ unit: 'binary' }), checkParsesOrRejects), { numRuns: 500 })
    fc.assert(fc.property(tokenSoup, checkParsesOrRejects), { numRuns: 2000 })
  })

  it('rejects an empty item anywhere in a list', () => {
    fc.assert(
      fc.property(validList, fc.nat(), space, (list, at, blank) => {
        const pieces = list.text.split(/[,;|]/)
        pieces.splice(at % (pieces.length + 1), 0, blank)
        expect(() => parseLimits(pieces.join(','))).toThrow(LimitParseError)
      }),
      { numRuns: 300 },
    )
  })

  it('round-trips describeLimit through the parser', () => {
    fc.assert(
      fc.property(validItem, ({ expected }) => {
        expect(parseLimit(describeLimit(expected))).toEqual(expected)
      }),
      { numRuns: 500 },
    )
  })

  it('names policies with header-safe tokens that identify the window', () => {
    fc.assert(
      fc.property(validItem, validItem, (a, b) => {
        const name = policyName(a.expected)
        expect(name).toMatch(/^[0-9]+-per-([0-9]+-)?[a-z]+$/)
        const same =
          a.expected.amount === b.expected.amount &&
          a.expected.multiples === b.expected.multiples &&
          a.expected.unit === b.expected.unit
        expect(name === policyName(b.expected)).toBe(same)
      }),
      { numRuns: 500 },
    )
  })
})
