import { describe, expect, it } from 'vitest'
import { UsageScanner } from '../../../src/limits/tokens/usage-scanner.js'

function scan(...pieces: string[]): UsageScanner {
  const scanner = new UsageScanner()
  for (const piece of pieces) scanner.feed(piece)
  return scanner
}

const ANSWER =
  '{"choices":[{"message":{"content":"say \\"prompt_tokens\\": 99 \\\\"}}],"usage":{"prompt_tokens":12,"completion_tokens":1e1}}'

describe('UsageScanner', () => {
  it('reads the same counts and text however the answer is cut into pieces', () => {
    for (let cut = 0; cut <= ANSWER.length; cut++) {
      const scanner = scan(ANSWER.slice(0, cut), ANSWER.slice(cut))
      expect(scanner.reported).toMatchObject({ promptTokens: 12, completionTokens: 10, invalid: false })
      expect(scanner.textValues).toBe(1)
    }
  })

  it('never reads a key spelled out inside generated text', () => {
    const scanner = scan('{"content":"{\\"eval_count\\":5, \\"usage\\":{\\"prompt_tokens\\":7}}"}')
    expect(scanner.reported).toBeUndefined()
  })

  it('adds up counts within one value and keeps the last value of a stream', () => {
    const array = scan(
      '[{"tokens_evaluated":10,"tokens_predicted":2},{"tokens_evaluated":5,"tokens_predicted":3}]',
    )
    expect(array.reported).toMatchObject({ tokensEvaluated: 15, tokensPredicted: 5 })
    const stream = scan(
      'data: {"tokens_predicted":1}\n\n',
      'data: {"tokens_predicted":2}\n\n',
      'data: [DONE]\n\n',
    )
    expect(stream.reported).toMatchObject({ tokensPredicted: 2 })
  })

  it('counts the entries of a prefill array, brackets inside strings included', () => {
    const scanner = scan(
      '{"details":{"generated_tokens":4,"prefill":[{"id":1,"text":"]"},{"id":2,"text":"[{"}],"tokens":[{"id":3}]}}',
    )
    expect(scanner.reported).toMatchObject({ generatedTokens: 4, prefill: 2 })
  })

  it.each([['-1'], ['1.5'], ['"3"'], ['null'], [`1${'0'.repeat(400)}`], ['1e400']])(
    'marks %s as no count',
    (value) => {
      expect(scan(`{"usage":{"prompt_tokens":${value},"completion_tokens":1}}`).reported?.invalid).toBe(true)
    },
  )
})
