import { describe, expect, it } from 'vitest'
import { InvalidJsonBodyError, UnsupportedJsonEncodingError } from '../../../src/forward/json-scan.js'
import {
  estimateRequest,
  InvalidTokenFieldError,
  MAX_TOKENS_FIELD,
} from '../../../src/limits/tokens/estimate.js'
import { askForUsage } from '../../../src/limits/tokens/usage-request.js'

const DEFAULT = 1024
const estimate = (body: unknown) => estimateRequest(Buffer.from(JSON.stringify(body)), DEFAULT)
const hi = [{ role: 'user', content: 'hi' }]

describe('the token estimate reads the answer cap as the engine does', () => {
  it('multiplies the cap by the answers generated: n, best_of', () => {
    expect(estimate({ messages: hi, n: 20, max_tokens: 100 }).completionTokens).toBe(2000)
    expect(estimate({ prompt: 'x', best_of: 5, n: 2, max_tokens: 10 }).completionTokens).toBe(50)
    expect(estimate({ messages: hi, n: 0, max_tokens: 10 }).completionTokens).toBe(10)
  })

  it('reads max_completion_tokens || max_tokens || the default, as vLLM does (0 falls through)', () => {
    expect(estimate({ messages: hi, max_completion_tokens: 0, max_tokens: 500 }).completionTokens).toBe(500)
    expect(estimate({ messages: hi, max_completion_tokens: 7, max_tokens: 500 }).completionTokens).toBe(7)
    expect(estimate({ messages: hi, max_tokens: 0 }).completionTokens).toBe(DEFAULT)
    expect(estimate({ messages: hi, max_tokens: null }).completionTokens).toBe(DEFAULT)
  })

  it('reads the native caps of llama.cpp, TGI and Ollama', () => {
    expect(estimate({ prompt: 'x', n_predict: 3000 }).completionTokens).toBe(3000)
    expect(estimate({ prompt: 'x', n_predict: 3000, max_tokens: 10 }).completionTokens).toBe(3000)
    expect(estimate({ inputs: 'x', parameters: { max_new_tokens: 700, best_of: 2 } }).completionTokens).toBe(
      1400,
    )
    expect(estimate({ prompt: 'x', options: { num_predict: 900 } }).completionTokens).toBe(900)
    expect(estimate({ text: 'x', sampling_params: { max_new_tokens: 300, n: 3 } }).completionTokens).toBe(900)
    expect(estimate({ input: 'x', max_output_tokens: 4000 }).completionTokens).toBe(4000)
    const repeated = '{"inputs":"x","parameters":{"max_new_tokens":9000},"parameters":{"max_new_tokens":5}}'
    expect(estimateRequest(Buffer.from(repeated), DEFAULT).completionTokens).toBe(5)
  })

  it('reads integral numbers as Python does, the last of repeated keys', () => {
    expect(estimateRequest(Buffer.from('{"max_tokens":5e2}'), DEFAULT).completionTokens).toBe(500)
    expect(estimateRequest(Buffer.from('{"max_tokens":500.0}'), DEFAULT).completionTokens).toBe(500)
    expect(estimateRequest(Buffer.from('{"max_tokens":9000,"max_tokens":5}'), DEFAULT).completionTokens).toBe(
      5,
    )
    expect(estimateRequest(Buffer.from('{"\\u006dax_tokens":5000}'), DEFAULT).completionTokens).toBe(5000)
    const hidden = `{"max_tokens":1,"\\u006d\\u0061\\u0078\\u005f\\u0063\\u006f\\u006d\\u0070\\u006c\\u0065\\u0074\\u0069\\u006f\\u006e\\u005f\\u0074\\u006f\\u006b\\u0065\\u006e\\u0073":7000}`
    expect(estimateRequest(Buffer.from(hidden), DEFAULT).completionTokens).toBe(7000)
  })

  it.each([
    ['a string', '{"max_tokens":"5000"}'],
    ['a fraction', '{"max_tokens":10.5}'],
    ['a negative', '{"n_predict":-1}'],
    ['NaN', '{"max_tokens":NaN}'],
    ['Infinity', '{"n":Infinity}'],
    ['a huge value', `{"max_completion_tokens":${MAX_TOKENS_FIELD + 1}}`],
    ['a boolean', '{"best_of":true}'],
    ['an object', '{"parameters":{"max_new_tokens":{}}}'],
    ['a 400-digit number', `{"max_tokens":${'9'.repeat(400)}}`],
    ['a string in options', '{"options":{"num_predict":"100"}}'],
  ])('refuses %s rather than guessing', (_what, text) => {
    expect(() => estimateRequest(Buffer.from(text), DEFAULT)).toThrow(InvalidTokenFieldError)
  })
})

describe('the token estimate reads every field the engine puts in the prompt', () => {
  it('counts tools, functions, tool_choice and response_format schemas as their JSON text', () => {
    const tools = Array.from({ length: 10 }, (_, i) => ({ type: 'function', function: { name: `f${i}` } }))
    const base = estimate({ messages: hi, max_tokens: 1 }).promptTokens
    const withTools = estimate({ messages: hi, max_tokens: 1, tools }).promptTokens
    expect(withTools - base).toBeGreaterThanOrEqual(Math.floor(JSON.stringify(tools).length / 4))
    const schema = { type: 'json_schema', json_schema: { schema: { properties: { a: { type: 'string' } } } } }
    expect(estimate({ messages: hi, response_format: schema }).promptTokens).toBeGreaterThan(base + 10)
  })

  it('counts the text parts of multimodal content, roles, tool calls, and skips the media', () => {
    const image = `data:image/png;base64,${'A'.repeat(100_000)}`
    const e = estimate({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'x'.repeat(400) },
            { type: 'image_url', image_url: { url: image } },
            { type: 'input_audio', input_audio: { data: image, format: 'wav' } },
          ],
        },
        { role: 'assistant', tool_calls: [{ function: { name: 'f', arguments: 'y'.repeat(400) } }] },
      ],
    })
    expect(e.promptTokens).toBeGreaterThanOrEqual(200)
    expect(e.promptTokens).toBeLessThan(220)
  })

  it('counts a prompt of token ids a token each', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => i)
    expect(estimate({ prompt: ids }).promptTokens).toBe(1000)
  })

  it('reads a parsed body the same as its bytes', () => {
    const body = { messages: hi, tools: [{ type: 'function' }], n: 3, max_tokens: 9 }
    expect(estimateRequest(body, DEFAULT)).toEqual(estimate(body))
  })
})

describe('the token estimate reads the body as json.loads(bytes) does, or refuses it', () => {
  const prompt = 'x'.repeat(4000)
  const text = JSON.stringify({ messages: [{ role: 'user', content: prompt }], max_tokens: 10 })

  it('reads a body after a UTF-8 byte order mark', () => {
    const e = estimateRequest(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), DEFAULT)
    expect(e.promptTokens).toBeGreaterThanOrEqual(1000)
    expect(e.completionTokens).toBe(10)
  })

  it('reads a body with bare NaN and Infinity literals in fields it does not count', () => {
    const e = estimateRequest(Buffer.from(`{"temperature":NaN,"top_p":-Infinity,${text.slice(1)}`), DEFAULT)
    expect(e.promptTokens).toBeGreaterThanOrEqual(1000)
  })

  it.each([
    ['UTF-16LE with a BOM', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')])],
    ['UTF-16LE without one', Buffer.from(text, 'utf16le')],
    ['UTF-16BE', Buffer.from(text, 'utf16le').swap16()],
  ])('refuses %s with 415', (_what, bytes) => {
    expect(() => estimateRequest(bytes, DEFAULT)).toThrow(UnsupportedJsonEncodingError)
  })

  it('does not read a body that is no JSON object (an upload) and gives it the default', () => {
    const e = estimateRequest(Buffer.from('--boundary\r\nContent-Disposition: form-data\r\n'), DEFAULT)
    expect(e).toMatchObject({ promptTokens: 0, completionTokens: DEFAULT, json: false })
  })

  it('scans a 10 MB nested body without building it (no recursion, no parse)', () => {
    const depth = 5_000_000
    const body = Buffer.from(`{"messages":${'['.repeat(depth)}"hi"${']'.repeat(depth)},"max_tokens":3}`)
    expect(estimateRequest(body, DEFAULT)).toMatchObject({ promptTokens: 1, completionTokens: 3 })
    expect(() => estimateRequest(body.subarray(0, body.length - 30), DEFAULT)).toThrow(InvalidJsonBodyError)
  })
})

describe('askForUsage', () => {
  const ask = (text: string) => JSON.parse(askForUsage(Buffer.from(text)).toString())

  it('adds stream_options, or include_usage to them, splicing the bytes', () => {
    expect(ask('{"stream":true}')).toEqual({ stream_options: { include_usage: true }, stream: true })
    expect(ask('{}')).toEqual({ stream_options: { include_usage: true } })
    expect(ask('{"stream_options":{"continuous_usage_stats":true}}')).toEqual({
      stream_options: { include_usage: true, continuous_usage_stats: true },
    })
    expect(ask('{"stream_options":{"include_usage":false}}')).toEqual({
      stream_options: { include_usage: true },
    })
    expect(ask('{"stream_options":null}')).toEqual({ stream_options: { include_usage: true } })
  })

  it('changes the last of repeated stream_options, the one a parser keeps, and keeps a BOM', () => {
    const out = askForUsage(
      Buffer.from('\uFEFF{"stream_options":{},"stream_options":{"include_usage":false}}'),
    )
    expect(out.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]))
    expect(JSON.parse(out.subarray(3).toString()).stream_options).toEqual({ include_usage: true })
  })

  it('keeps every other byte as the client wrote it', () => {
    const text = '{"temperature":NaN,"messages":[{"content":"caf\\u00e9"}],"stream":true}'
    expect(askForUsage(Buffer.from(text)).toString()).toBe(
      `{"stream_options":{"include_usage":true},${text.slice(1)}`,
    )
  })
})
