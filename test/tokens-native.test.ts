import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import { apiKeyKey, type TokenReservation } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import { type Framework, startExpress, startFastify } from './helpers/gateways.js'
import { Cleanup, closeServer, listen, send, waitFor } from './helpers/http.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const AUTH = { authorization: 'Bearer sk-test-native' }
/** What llama.cpp echoes back: the prompt and its settings, none of it generated. */
const ECHOED_PROMPT = 'You are a careful assistant. '.repeat(140)
const SETTINGS = `{"n_ctx":4096,"n_predict":24,"temperature":0.8,"stop":[],"grammar":"","samplers":["top_k","top_p","min_p","temperature"],"model":"tiny"}`
const GENERATED = 'The quick brown fox jumps over the lazy dog'

function sse(events: string[]): string {
  return events.map((e) => `data: ${e}\n\n`).join('')
}

/** Answers each native path the way its engine does (the counts chosen by the test). */
const ANSWERS: Record<string, { type: string; body: string }> = {
  // llama.cpp /completion: counts before the long echo of the prompt and settings.
  '/completion': {
    type: 'application/json; charset=utf-8',
    body: `{"index":0,"content":"${GENERATED}","tokens":[],"id_slot":0,"stop":true,"model":"tiny","tokens_predicted":24,"tokens_evaluated":301,"generation_settings":${SETTINGS},"prompt":"${ECHOED_PROMPT}","has_new_line":false,"truncated":false,"stop_type":"limit","stopping_word":"","tokens_cached":324,"timings":{"prompt_n":301,"predicted_n":24}}`,
  },
  // llama.cpp streamed: running totals in every chunk, the final one (stop: true) with the echo.
  '/completion-stream': {
    type: 'text/event-stream',
    body: sse([
      '{"index":0,"content":"The","tokens":[450],"stop":false,"id_slot":-1,"tokens_predicted":1,"tokens_evaluated":301}',
      '{"index":0,"content":" quick","tokens":[4996],"stop":false,"id_slot":-1,"tokens_predicted":2,"tokens_evaluated":301}',
      `{"index":0,"content":"","tokens":[],"id_slot":0,"stop":true,"model":"tiny","tokens_predicted":24,"tokens_evaluated":301,"generation_settings":${SETTINGS},"prompt":"${ECHOED_PROMPT}","stop_type":"limit"}`,
    ]),
  },
  // TGI /generate with details and decoder_input_details: 12 prefill tokens, 20 generated.
  '/generate': {
    type: 'application/json',
    body: `{"generated_text":"${GENERATED}","details":{"finish_reason":"length","generated_tokens":20,"seed":null,"prefill":[${Array.from(
      { length: 12 },
      (_, i) => `{"id":${i},"text":"${i === 3 ? ']}' : 'x'}","logprob":null}`,
    ).join(',')}],"tokens":[{"id":5,"text":"The","logprob":-0.5,"special":false}]}}`,
  },
  // TGI /generate_stream: tokens one by one, the final event with details (no prefill).
  '/generate_stream': {
    type: 'text/event-stream',
    body: sse([
      '{"index":1,"token":{"id":450,"text":"The","logprob":-0.1,"special":false},"generated_text":null,"details":null}',
      `{"index":2,"token":{"id":4996,"text":" quick","logprob":-0.2,"special":false},"generated_text":"${GENERATED}","details":{"finish_reason":"length","generated_tokens":20,"seed":null}}`,
    ]),
  },
  // Ollama /api/generate (stream: false): the context array, then the counts.
  '/api/generate': {
    type: 'application/json; charset=utf-8',
    body: `{"model":"tiny","created_at":"2026-01-01T00:00:00Z","response":"${GENERATED}","done":true,"done_reason":"stop","context":[${Array.from({ length: 400 }, (_, i) => i).join(',')}],"total_duration":5043500667,"prompt_eval_count":26,"prompt_eval_duration":325953000,"eval_count":290,"eval_duration":4709213000}`,
  },
  // Ollama /api/chat streamed: NDJSON, the counts on the last line.
  '/api/chat': {
    type: 'application/x-ndjson',
    body: `${[
      '{"model":"tiny","created_at":"t","message":{"role":"assistant","content":"The"},"done":false}',
      '{"model":"tiny","created_at":"t","message":{"role":"assistant","content":" quick"},"done":false}',
      '{"model":"tiny","created_at":"t","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":290}',
    ].join('\n')}\n`,
  },
  // An engine that reports nothing and echoes the prompt: only the generated text is counted.
  '/silent': {
    type: 'application/json',
    body: `{"content":"${GENERATED}","stop":true,"generation_settings":${SETTINGS},"prompt":"${ECHOED_PROMPT}"}`,
  },
}

async function engine(): Promise<string> {
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    req.on('end', () => {
      const answer = ANSWERS[req.url ?? '']
      if (answer === undefined) {
        res.writeHead(404).end()
        return
      }
      res.writeHead(200, { 'content-type': answer.type })
      // Split mid-way, as a socket may: counts and strings cut across chunks.
      const bytes = Buffer.from(answer.body)
      res.write(bytes.subarray(0, 37))
      setTimeout(() => res.end(bytes.subarray(37)), 5)
    })
  })
  const port = await listen(server)
  cleanup.add(() => closeServer(server), null)
  return `http://127.0.0.1:${port}`
}

async function start(
  framework: Framework,
  backend: string,
): Promise<{ port: number; settled: TokenReservation[] }> {
  const settled: TokenReservation[] = []
  const options = {
    backends: [{ url: backend }],
    keyGenerator: apiKeyKey,
    onTokensSettled: (_req: unknown, r: TokenReservation) => {
      settled.push(r)
    },
  }
  const tokens = '1000000 per minute'
  if (framework === 'Fastify') {
    const { port } = await startFastify(cleanup, options as never, (app) => {
      for (const path of Object.keys(ANSWERS))
        app.post(path, { config: { rateLimit: { tokens } } }, app.tollgate.forward())
    })
    return { port, settled }
  }
  const { port } = await startExpress(cleanup, options as never, (app, gate) => {
    for (const path of Object.keys(ANSWERS)) app.post(path, gate.limit({ tokens }), gate.forward())
  })
  return { port, settled }
}

describe.each(['Fastify', 'Express'] as const)("engines' native counts, through %s", (framework) => {
  async function charged(path: string, body: Record<string, unknown>): Promise<TokenReservation> {
    const gateway = await start(framework, await engine())
    const answer = await send(gateway.port, { path, headers: AUTH, body })
    expect(answer.status).toBe(200)
    // Passed on as the engine wrote it (what follows a stream's end is the relay's business).
    expect(answer.text().startsWith(ANSWERS[path]!.body)).toBe(true)
    await waitFor(() => gateway.settled.length === 1, 'the settle')
    return gateway.settled[0]!
  }

  it("charges llama.cpp's /completion tokens_evaluated + tokens_predicted, not the echoed body", async () => {
    const settled = await charged('/completion', { prompt: ECHOED_PROMPT, n_predict: 24 })
    expect(settled.source).toBe('usage')
    expect(settled.charged).toBe(325)
  })

  it("charges a llama.cpp stream its final chunk's counts", async () => {
    const settled = await charged('/completion-stream', {
      prompt: ECHOED_PROMPT,
      n_predict: 24,
      stream: true,
    })
    expect(settled.source).toBe('usage')
    expect(settled.charged).toBe(325)
  })

  it("charges TGI's details: the prefill's length and generated_tokens", async () => {
    const settled = await charged('/generate', {
      inputs: 'hello there',
      parameters: { max_new_tokens: 20, details: true, decoder_input_details: true },
    })
    expect(settled.source).toBe('usage')
    expect(settled.charged).toBe(32)
  })

  it("charges a TGI stream generated_tokens plus the prompt's estimate", async () => {
    const settled = await charged('/generate_stream', {
      inputs: 'hello there',
      parameters: { max_new_tokens: 20 },
    })
    expect(settled.source).toBe('estimate')
    expect(settled.charged).toBeGreaterThanOrEqual(20)
    expect(settled.charged).toBeLessThanOrEqual(20 + 4)
  })

  it("charges Ollama's prompt_eval_count + eval_count, as JSON and as an NDJSON stream", async () => {
    const json = await charged('/api/generate', { model: 'tiny', prompt: 'hello', stream: false })
    expect(json.source).toBe('usage')
    expect(json.charged).toBe(316)
    const stream = await charged('/api/chat', {
      model: 'tiny',
      messages: [{ role: 'user', content: 'hello' }],
    })
    expect(stream.source).toBe('usage')
    expect(stream.charged).toBe(316)
  })

  it('without counts, estimates the generated text only, not the echo of the prompt', async () => {
    const settled = await charged('/silent', { prompt: 'hello there', n_predict: 24 })
    expect(settled.source).toBe('estimate')
    // "hello there" is 3 tokens at 4 characters a token; the 43 generated characters 11.
    expect(settled.charged).toBe(3 + 11)
  })
})
