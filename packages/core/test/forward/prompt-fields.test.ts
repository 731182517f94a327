import { describe, expect, it } from 'vitest'
import { topLevelFields } from '../../src/forward/json-fields.js'
import { MAX_PROMPT_VALUE_BYTES, promptFieldsOf } from '../../src/forward/prompt-fields.js'

const read = (text: string) => {
  const body = Buffer.from(text)
  return promptFieldsOf(body, topLevelFields(body))
}

describe('promptFieldsOf', () => {
  it('parses the prompt value alone, under its own key', () => {
    expect(read('{"model":"m","messages":[{"role":"system","content":"be brief"}]}')).toEqual({
      messages: [{ role: 'system', content: 'be brief' }],
    })
    expect(read('{"prompt":"once upon"}')).toEqual({ prompt: 'once upon' })
  })

  it('reads nothing from a prompt too large or too deeply nested to parse cheaply', () => {
    const huge = `{"prompt":"${'a'.repeat(MAX_PROMPT_VALUE_BYTES)}"}`
    expect(read(huge)).toBeUndefined()
    const deep = `{"messages":${'['.repeat(20)}${']'.repeat(20)}}`
    expect(read(deep)).toBeUndefined()
  })

  it('reads nothing from a body without a prompt or with a broken prompt value', () => {
    expect(read('{"model":"m"}')).toBeUndefined()
    expect(read('{"messages":[tru]}')).toBeUndefined()
  })
})
