import { describe, expect, it } from 'vitest'
import { InvalidJsonBodyError, nestsDeeperThan, topLevelFields } from '../../src/forward/json-fields.js'

const fields = (text: string) => topLevelFields(Buffer.from(text))

describe('topLevelFields', () => {
  it('reads model and stream from the top level only', () => {
    expect(fields('{"messages":[{"model":"inner"}],"model":"outer","stream":true}')).toMatchObject({
      model: 'outer',
      stream: true,
    })
    expect(fields('{"x":{"model":"inner","stream":true}}')).toMatchObject({ model: undefined, stream: false })
  })

  it('finds where the prompt lies: messages over prompt over input, at the top level only', () => {
    const body = '{"input":"i","x":{"messages":[]},"messages":[{"role":"user","content":"hi"}],"prompt":"p"}'
    const span = fields(body).prompt
    expect(span?.key).toBe('messages')
    expect(body.slice(span!.start, span!.end)).toBe('[{"role":"user","content":"hi"}]')
    expect(fields('{"prompt":"p","input":"i"}').prompt?.key).toBe('prompt')
    expect(fields('{"input":["a"]}').prompt?.key).toBe('input')
    expect(fields('{"model":"m"}').prompt).toBeUndefined()
  })

  it('decodes escapes in keys and values, and keeps the last duplicate as JSON.parse does', () => {
    expect(fields('{"\\u006dodel":"a\\"b","model":"c\\u00e9"}').model).toBe('cé')
    expect(fields('{ "model" : "x" , "stream" : false }')).toMatchObject({ model: 'x', stream: false })
  })

  it('skips strings holding brackets and quotes', () => {
    expect(fields('{"a":"}]\\"{[","b":[1,{"c":"]"}],"model":"m"}').model).toBe('m')
  })

  it('has no model for a non-object or a non-string model', () => {
    expect(fields('[1,2]').model).toBeUndefined()
    expect(fields('"model"').model).toBeUndefined()
    expect(fields('{"model":{"$ne":null}}').model).toBeUndefined()
    expect(fields('{}').model).toBeUndefined()
  })

  it.each([
    '{"model": "fake-model", "messages": [{"role": "us',
    '{"model" "x"}',
    '{"model":"x" "y":1}',
    '{"model":"a\u0000b"}',
    '{model:"x"}',
  ])('refuses broken structure: %j', (text) => {
    expect(() => fields(text)).toThrow(InvalidJsonBodyError)
  })

  it('walks deep nesting in one pass', () => {
    const depth = 1_000_000
    const body = `{"messages":${'['.repeat(depth)}${']'.repeat(depth)},"model":"m"}`
    expect(fields(body).model).toBe('m')
  })
})

describe('nestsDeeperThan', () => {
  it('counts arrays and objects, not brackets inside strings', () => {
    expect(nestsDeeperThan(Buffer.from('{"a":[[{"b":1}]]}'), 4)).toBe(false)
    expect(nestsDeeperThan(Buffer.from('{"a":[[{"b":[1]}]]}'), 4)).toBe(true)
    expect(nestsDeeperThan(Buffer.from('{"a":"[[[[[[[[[["}'), 2)).toBe(false)
  })
})
