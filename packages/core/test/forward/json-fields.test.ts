import type { IncomingMessage } from 'node:http'
import { describe, expect, it } from 'vitest'
import {
  InvalidJsonBodyError,
  isJsonRequest,
  nestsDeeperThan,
  topLevelFields,
  UnsupportedJsonEncodingError,
} from '../../src/forward/json-fields.js'

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

  it('reads past a UTF-8 byte order mark, and skips bare NaN and Infinity as Python reads them', () => {
    const body = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from('{"t":NaN,"u":-Infinity,"model":"m"}'),
    ])
    const read = topLevelFields(body)
    expect(read.model).toBe('m')
    expect(body.toString('utf8', read.modelStart, read.modelEnd)).toBe('"m"')
  })

  it.each([
    ['UTF-16LE', Buffer.from('{"model":"m"}', 'utf16le')],
    ['UTF-16BE', Buffer.from('{"model":"m"}', 'utf16le').swap16()],
    ['UTF-16 with a BOM', Buffer.from('\uFEFF{"model":"m"}', 'utf16le')],
    ['UTF-32LE', Buffer.from([0x7b, 0, 0, 0, 0x7d, 0, 0, 0])],
    ['UTF-32BE with a BOM', Buffer.from([0, 0, 0xfe, 0xff, 0, 0, 0, 0x7b])],
  ])('refuses %s JSON with 415 rather than read it as nothing', (_what, body) => {
    expect(() => topLevelFields(body)).toThrow(UnsupportedJsonEncodingError)
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

describe('isJsonRequest', () => {
  const req = (type?: string) =>
    ({ headers: type === undefined ? {} : { 'content-type': type } }) as IncomingMessage

  it('reads a body as JSON when it says so, or says nothing (FastAPI parses it as JSON then)', () => {
    expect(isJsonRequest(req('application/json'))).toBe(true)
    expect(isJsonRequest(req('application/vnd.api+json; charset=utf-8'))).toBe(true)
    expect(isJsonRequest(req())).toBe(true)
    expect(isJsonRequest(req('multipart/form-data; boundary=x'))).toBe(false)
    expect(isJsonRequest(req('text/plain'))).toBe(false)
  })
})
