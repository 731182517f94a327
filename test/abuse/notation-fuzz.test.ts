import { LimitParseError, parseLimits } from '@tollgate/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

// The notation parser sees configuration, but also whatever a route's `limits` is built from at
// runtime. Any string either parses to sane limits or throws LimitParseError, and a 100 KB
// string of any shape is handled in linear time (no regex backtracking blow-up).

const KB100 = 100 * 1024

function parsesOrRefuses(text: string): void {
  let items: ReturnType<typeof parseLimits>
  try {
    items = parseLimits(text)
  } catch (error) {
    expect(error).toBeInstanceOf(LimitParseError)
    // The message quotes the input, cut short: an error for a 100 KB input stays readable.
    expect((error as Error).message.length).toBeLessThan(2_000)
    return
  }
  expect(items.length).toBeGreaterThan(0)
  for (const item of items) {
    expect(Number.isSafeInteger(item.amount) && item.amount > 0).toBe(true)
    expect(Number.isSafeInteger(item.multiples) && item.multiples > 0).toBe(true)
    expect(item.windowMs).toBeGreaterThan(0)
  }
}

/** Pieces of the grammar and near-misses, so long inputs get deep into the parser. */
const token = fc.constantFrom(
  '1',
  '10',
  '999999999999999999999',
  ' ',
  '\t',
  'per',
  'PER',
  '/',
  'second',
  'seconds',
  'minute',
  'hour',
  'days',
  'month',
  'year',
  'week',
  ',',
  ';',
  '|',
  '.',
  '-',
  '+',
  '٣',
  'e5',
  '0',
  's',
  '\u0000',
  '\n',
)

const longGrammarish = fc.array(token, { minLength: 1, maxLength: 400 }).map((tokens) => {
  const unit = tokens.join('')
  return unit.repeat(Math.max(1, Math.ceil(KB100 / unit.length))).slice(0, KB100)
})

describe('parseLimits under fuzzing', () => {
  it('any short string parses to valid limits or throws LimitParseError', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), parsesOrRefuses), { numRuns: 2_000 })
    fc.assert(
      fc.property(fc.array(token, { maxLength: 30 }), (tokens) => parsesOrRefuses(tokens.join(''))),
      { numRuns: 2_000 },
    )
  })

  it('100 KB strings built from grammar pieces are answered quickly', () => {
    const started = performance.now()
    fc.assert(fc.property(longGrammarish, parsesOrRefuses), { numRuns: 40 })
    // Generous: linear parsing of 4 MB takes milliseconds; a backtracking regex would take hours.
    expect(performance.now() - started).toBeLessThan(10_000)
  })

  it('100 KB of random characters, and the classic pathological shapes, are answered quickly', () => {
    const shapes = [
      '1'.repeat(KB100),
      ' '.repeat(KB100),
      `1 ${' '.repeat(KB100)}per second`,
      `1 per ${'1'.repeat(KB100)} seconds`,
      `1 per 1 ${'s'.repeat(KB100)}`,
      '1 per second, '.repeat(KB100 / 14),
      `${'1 per second,'.repeat(KB100 / 13)}`,
      '1/'.repeat(KB100 / 2),
      ',,'.repeat(KB100 / 2),
      'per '.repeat(KB100 / 4),
      `${'1 per second | '.repeat(7_000)}1 per second`,
    ]
    const started = performance.now()
    for (const shape of shapes) parsesOrRefuses(shape)
    fc.assert(
      fc.property(fc.string({ minLength: KB100, maxLength: KB100, unit: 'binary' }), parsesOrRefuses),
      { numRuns: 10 },
    )
    expect(performance.now() - started).toBeLessThan(10_000)
  })

  it('a long list of valid items parses item by item', () => {
    const text = Array.from({ length: 5_000 }, (_, i) => `${i + 1} per ${i + 1} seconds`).join(', ')
    expect(parseLimits(text)).toHaveLength(5_000)
  })
})
