import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type FailureMode,
  type FakeModelServer,
  type FakeModelServerOptions,
  type MetricsFormat,
  paretoTokens,
  startFakeModelServer,
  VLLM_LLAMA_8B_A100,
} from '../examples/fake-model-server.js'

const open: FakeModelServer[] = []
const controllers: AbortController[] = []

afterEach(async () => {
  for (const c of controllers.splice(0)) c.abort()
  await Promise.all(open.splice(0).map((s) => s.close()))
})

// biome-ignore lint/suspicious/noExplicitAny: answers are checked by the assertions, not by types
type Json = any

const json = (res: Response): Promise<Json> => res.json()

async function fake(options: FakeModelServerOptions = {}): Promise<FakeModelServer> {
  const server = await startFakeModelServer(options)
  open.push(server)
  return server
}

function abortable(): AbortController {
  const controller = new AbortController()
  controllers.push(controller)
  return controller
}

function post(server: FakeModelServer, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal,
  })
}

const chat = (server: FakeModelServer, body: Record<string, unknown> = {}, signal?: AbortSignal) =>
  post(
    server,
    '/v1/chat/completions',
    { model: 'fake-model', messages: [{ role: 'user', content: 'hi' }], ...body },
    signal,
  )

/** Yields each SSE `data:` payload as it arrives. */
async function* sseData(res: Response): AsyncGenerator<string> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let buffered = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buffered += decoder.decode(value, { stream: true })
    let end = buffered.indexOf('\n\n')
    while (end >= 0) {
      const event = buffered.slice(0, end)
      buffered = buffered.slice(end + 2)
      for (const line of event.split('\n')) if (line.startsWith('data: ')) yield line.slice(6)
      end = buffered.indexOf('\n\n')
    }
  }
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** For requests a test aborts on purpose: their rejection is expected and may come before anyone awaits. */
function expectingFailure<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {})
  return promise
}

/** Answers that run until aborted, so a test controls when a place in the batch frees up. */
const longOrShort = (_random: () => number, body: Record<string, unknown>) => (body.long ? 100_000 : 3)

describe('JSON answers', () => {
  it('answers chat completions in the OpenAI shape, with usage and the backend name', async () => {
    const server = await fake({ name: 'alpha', answerTokens: 5 })
    const res = await chat(server, { messages: [{ role: 'user', content: 'one two three four five six' }] })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^application\/json/)
    expect(res.headers.get('x-backend')).toBe('alpha')
    const body = await json(res)
    expect(body).toMatchObject({
      object: 'chat.completion',
      model: 'fake-model',
      system_fingerprint: 'alpha',
      choices: [{ index: 0, message: { role: 'assistant' }, finish_reason: 'stop' }],
    })
    expect(body.id).toMatch(/^chatcmpl-/)
    expect(Number.isInteger(body.created)).toBe(true)
    expect(body.choices[0].message.content.split(' ')).toHaveLength(5)
    expect(body.usage.completion_tokens).toBe(5)
    expect(body.usage.prompt_tokens).toBeGreaterThan(0)
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + 5)
    expect(server.stats).toMatchObject({ requests: 1, completed: 1, inFlight: 0, tokens: 5 })
  })

  it('answers legacy completions, and max_tokens caps the length', async () => {
    const server = await fake({ answerTokens: 20 })
    const res = await post(server, '/v1/completions', {
      model: 'fake-model',
      prompt: 'Once upon',
      max_tokens: 4,
    })
    expect(res.status).toBe(200)
    const body = await json(res)
    expect(body.object).toBe('text_completion')
    expect(body.id).toMatch(/^cmpl-/)
    expect(body.choices[0].finish_reason).toBe('length')
    expect(body.choices[0].text.split(' ')).toHaveLength(4)
    expect(body.usage.completion_tokens).toBe(4)
  })

  it('records the exact bytes and headers it received', async () => {
    const server = await fake()
    const raw = '{ "model":"fake-model",   "messages":[{"role":"user","content":"héllo ✓"}] }'
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-42' },
      body: raw,
    })
    await res.arrayBuffer()
    expect(server.lastRequest?.body.equals(Buffer.from(raw))).toBe(true)
    expect(server.lastRequest?.headers['x-request-id']).toBe('req-42')
    expect(server.lastRequest?.method).toBe('POST')
    expect(server.lastRequest?.url).toBe('/v1/chat/completions')
    expect(server.stats.connections).toBeGreaterThanOrEqual(1)
  })

  it('gives the same answers for the same seed, and feeds its random source to answerTokens', async () => {
    const tokens = paretoTokens(4, 1.2, 64)
    const a = await fake({ seed: 7, answerTokens: tokens })
    const b = await fake({ seed: 7, answerTokens: tokens })
    const contents = async (server: FakeModelServer) => {
      const out: string[] = []
      for (let i = 0; i < 20; i++) out.push((await json(await chat(server))).choices[0].message.content)
      return out
    }
    const fromA = await contents(a)
    expect(fromA).toEqual(await contents(b))
    const lengths = fromA.map((c) => c.split(' ').length)
    expect(Math.min(...lengths)).toBeGreaterThanOrEqual(4)
    expect(Math.max(...lengths)).toBeLessThanOrEqual(64)
    expect(new Set(lengths).size).toBeGreaterThan(1)
  })
})

describe('streaming', () => {
  it('sends one chunk per token as it is generated, then usage and [DONE]', async () => {
    const server = await fake({ timePerTokenMs: 20, answerTokens: 10 })
    const res = await chat(server, { stream: true, stream_options: { include_usage: true } })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const events: { data: string; completedWhenSeen: number }[] = []
    for await (const data of sseData(res)) events.push({ data, completedWhenSeen: server.stats.completed })

    expect(events.at(-1)?.data).toBe('[DONE]')
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data))
    // The first token reached the client while the server was still generating the rest.
    expect(events[1]?.completedWhenSeen).toBe(0)
    expect(server.stats.completed).toBe(1)

    expect(chunks[0]).toMatchObject({
      object: 'chat.completion.chunk',
      choices: [{ delta: { role: 'assistant' } }],
    })
    const tokens = chunks.filter((c) => c.choices[0]?.delta?.content)
    expect(tokens).toHaveLength(10)
    expect(chunks.at(-2).choices[0].finish_reason).toBe('stop')
    const usage = chunks.at(-1)
    expect(usage.choices).toEqual([])
    expect(usage.usage).toMatchObject({ completion_tokens: 10, total_tokens: usage.usage.prompt_tokens + 10 })
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1)
  })

  it('streams legacy completions without a usage chunk unless asked', async () => {
    const server = await fake({ answerTokens: 3 })
    const res = await post(server, '/v1/completions', { model: 'fake-model', prompt: 'x', stream: true })
    const data: string[] = []
    for await (const d of sseData(res)) data.push(d)
    expect(data.at(-1)).toBe('[DONE]')
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d))
    expect(chunks).toHaveLength(4)
    expect(chunks.every((c) => c.object === 'text_completion' && !('usage' in c))).toBe(true)
    expect(chunks.at(-1).choices[0].finish_reason).toBe('stop')
  })
})

describe('capacity and queue', () => {
  it('generates at most `capacity` answers at once and serves the queue first in, first out', async () => {
    const server = await fake({ capacity: 2, timePerTokenMs: 10, answerTokens: longOrShort })
    const long1 = abortable()
    const long2 = abortable()
    const held = [long1, long2].map((c) => expectingFailure(chat(server, { long: true }, c.signal)))
    await waitFor(() => server.stats.inFlight === 2, 'two answers generating')

    const order: number[] = []
    const short: Promise<void>[] = []
    for (let i = 0; i < 4; i++) {
      short.push(
        chat(server, { tag: i })
          .then(json)
          .then(() => void order.push(i)),
      )
      await waitFor(() => server.stats.queued === i + 1, `request ${i} queued`)
    }
    expect(server.stats.inFlight).toBe(2)

    // One place frees up, so the queued answers run one after another, in arrival order.
    long1.abort()
    await Promise.all(short)
    expect(order).toEqual([0, 1, 2, 3])
    expect(server.stats.maxConcurrent).toBe(2)
    expect(server.stats.completed).toBe(4)

    long2.abort()
    await Promise.allSettled(held)
    await waitFor(() => server.stats.inFlight === 0, 'the batch to empty')
    expect(server.stats.cancelled).toBe(2)
  })

  it('answers 503 with Retry-After once the queue is full', async () => {
    const server = await fake({ capacity: 1, queueLimit: 1, timePerTokenMs: 10, answerTokens: longOrShort })
    const long = abortable()
    const held = expectingFailure(chat(server, { long: true }, long.signal))
    await waitFor(() => server.stats.inFlight === 1, 'one answer generating')
    const queued = chat(server)
    await waitFor(() => server.stats.queued === 1, 'one answer queued')

    const rejected = await chat(server)
    expect(rejected.status).toBe(503)
    expect(rejected.headers.get('retry-after')).toBe('1')
    expect((await json(rejected)).error).toMatchObject({ type: 'server_error', code: 'queue_full' })
    expect(server.stats.rejected).toBe(1)

    long.abort()
    await Promise.allSettled([held])
    expect((await queued).status).toBe(200)
  })
})

describe('failure modes', () => {
  it.each([
    ['error-503', 503, '1'],
    ['error-429', 429, '1'],
    ['error-500', 500, null],
  ] as const)('%s answers %i with an OpenAI error', async (mode, status, retryAfter) => {
    const server = await fake({ failureMode: mode })
    const res = await chat(server)
    expect(res.status).toBe(status)
    expect(res.headers.get('retry-after')).toBe(retryAfter)
    expect((await json(res)).error.message).toEqual(expect.any(String))
    expect((await fetch(`${server.url}/health`)).status).toBe(503)
    expect(server.stats).toMatchObject({ failed: 1, completed: 0 })
  })

  it('switches at runtime, with its own Retry-After, and back to healthy', async () => {
    const server = await fake()
    expect((await fetch(`${server.url}/health`)).status).toBe(200)
    server.setFailureMode('error-503', { retryAfterSeconds: 7 })
    const res = await chat(server)
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('7')
    await res.arrayBuffer()
    server.setFailureMode('none')
    expect((await chat(server)).status).toBe(200)
    expect((await fetch(`${server.url}/health`)).status).toBe(200)
    expect(() => server.setFailureMode('flaky' as FailureMode)).toThrow(/Unknown failure mode/)
  })

  it('reset destroys the connection before answering', async () => {
    const server = await fake({ failureMode: 'reset' })
    await expect(chat(server)).rejects.toThrow()
    expect(server.lastRequest?.body.length).toBeGreaterThan(0)
    expect(server.stats.failed).toBe(1)
  })

  it('stall accepts the request and never answers', async () => {
    const server = await fake({ failureMode: 'stall' })
    await expect(chat(server, {}, AbortSignal.timeout(200))).rejects.toThrow()
    expect(server.stats).toMatchObject({ requests: 1, failed: 1, completed: 0 })
  })

  it('die-mid-stream sends some chunks, then breaks the stream', async () => {
    const server = await fake({ failureMode: 'die-mid-stream', dieAfterChunks: 2, answerTokens: 10 })
    const res = await chat(server, { stream: true })
    expect(res.status).toBe(200)
    const seen: string[] = []
    await expect(
      (async () => {
        for await (const data of sseData(res)) seen.push(data)
      })(),
    ).rejects.toThrow()
    const tokens = seen.map((d) => JSON.parse(d)).filter((c) => c.choices[0]?.delta?.content)
    expect(tokens).toHaveLength(2)
    expect(seen).not.toContain('[DONE]')
    expect(server.stats).toMatchObject({ failed: 1, completed: 0, cancelled: 0, inFlight: 0 })
  })

  it('die-mid-stream cuts a JSON answer short too', async () => {
    const server = await fake({ failureMode: 'die-mid-stream' })
    const res = await chat(server)
    expect(res.status).toBe(200)
    await expect(res.text()).rejects.toThrow()
    expect((await fetch(`${server.url}/health`)).status).toBe(200)
  })
})

describe('cancellation', () => {
  it('stops generating when the client goes away mid-stream', async () => {
    const server = await fake({ timePerTokenMs: 10, answerTokens: 100_000 })
    const controller = abortable()
    const res = await chat(server, { stream: true }, controller.signal)
    const stream = sseData(res)
    await stream.next()
    await stream.next()
    controller.abort()
    await waitFor(() => server.stats.cancelled === 1, 'the cancellation')
    expect(server.stats).toMatchObject({ inFlight: 0, completed: 0 })
    const tokens = server.stats.tokens
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(server.stats.tokens).toBe(tokens)
  })

  it('counts a client that leaves before the first token, or while queued', async () => {
    const server = await fake({ capacity: 1, timeToFirstTokenMs: 60_000 })
    const first = abortable()
    const second = abortable()
    const a = expectingFailure(chat(server, {}, first.signal))
    await waitFor(() => server.stats.inFlight === 1, 'the first answer to start')
    const b = expectingFailure(chat(server, {}, second.signal))
    await waitFor(() => server.stats.queued === 1, 'the second answer to queue')

    second.abort()
    await waitFor(() => server.stats.cancelled === 1, 'the queued cancellation')
    expect(server.stats).toMatchObject({ queued: 0, inFlight: 1 })
    first.abort()
    await waitFor(() => server.stats.cancelled === 2, 'the cancellation before headers')
    expect(server.stats).toMatchObject({ queued: 0, inFlight: 0, completed: 0, tokens: 0 })
    await Promise.allSettled([a, b])
  })
})

/** `/metrics` as name → value, labels dropped (each fake exposes one series a name). */
async function metricsOf(server: FakeModelServer): Promise<Map<string, number>> {
  const res = await fetch(`${server.url}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  const values = new Map<string, number>()
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line)
    if (m) values.set(m[1] as string, Number(m[3]))
  }
  return values
}

/** A prompt of exactly `chars` characters (the fake counts four a token), distinct per `seed`. */
function text(chars: number, seed: string): string {
  return `${seed}:`.padEnd(chars, `${seed} lorem ipsum `).slice(0, chars)
}

const conversation = (system: string, user: string) => ({
  messages: [
    { role: 'system', content: system },
    { role: 'user', content: user },
  ],
})

/** Milliseconds until the first content token of a streamed chat answer; the rest is abandoned. */
async function timeToFirstToken(server: FakeModelServer, body: Record<string, unknown>): Promise<number> {
  const controller = abortable()
  const started = performance.now()
  const res = await chat(server, { ...body, stream: true }, controller.signal)
  const events = sseData(res)
  for (;;) {
    const { value, done } = await events.next()
    if (done) throw new Error('no token')
    if (value !== '[DONE]' && JSON.parse(value).choices[0]?.delta?.content) break
  }
  const elapsed = performance.now() - started
  controller.abort()
  await events.next().catch(() => {})
  return elapsed
}

describe('prefix cache and prefill', () => {
  it('reports the cached part of a repeated prefix in whole blocks, and counts it in the metrics', async () => {
    const server = await fake({ answerTokens: 2 })
    const system = text(1000, 'sys') // 15 whole blocks of 16 tokens (64 characters) and a bit
    const first = await json(await chat(server, conversation(system, 'first question')))
    expect(first.usage.prompt_tokens).toBe(Math.ceil((1000 + 14) / 4))
    expect(first.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 })

    // Same system prompt, another question: the blocks before the question are reused.
    const second = await json(await chat(server, conversation(system, 'second question!')))
    expect(second.usage.prompt_tokens_details.cached_tokens).toBe(15 * 16)

    // The very same prompt again: everything but the last token's block, as vLLM recomputes that one.
    const prompt = text(1024, 'exact')
    await chat(server, { messages: [{ role: 'user', content: prompt }] }).then(json)
    const again = await json(await chat(server, { messages: [{ role: 'user', content: prompt }] }))
    expect(again.usage.prompt_tokens).toBe(256)
    expect(again.usage.prompt_tokens_details.cached_tokens).toBe(15 * 16)

    expect(server.stats.cachedPromptTokens).toBe(2 * 15 * 16)
    const metrics = await metricsOf(server)
    expect(metrics.get('vllm:prefix_cache_hits_total')).toBe(2 * 15 * 16)
    expect(metrics.get('vllm:prefix_cache_queries_total')).toBe(
      first.usage.prompt_tokens + second.usage.prompt_tokens + 2 * 256,
    )
    expect(metrics.get('vllm:prompt_tokens_total')).toBe(metrics.get('vllm:prefix_cache_queries_total'))
    expect(metrics.get('vllm:generation_tokens_total')).toBe(8)
  })

  it('prefills only the uncached tokens, so a repeated prefix answers its first token sooner', async () => {
    // 2,000 prompt tokens at 5,000 a second: 400 ms cold; warm, one block of 16 tokens (~3 ms).
    const server = await fake({ prefillTokensPerSecond: 5000, timePerTokenMs: 1000, answerTokens: 3 })
    const body = { messages: [{ role: 'user', content: text(8000, 'long') }] }
    const cold = await timeToFirstToken(server, body)
    const warm = await timeToFirstToken(server, body)
    expect(cold).toBeGreaterThanOrEqual(390)
    expect(warm).toBeLessThan(cold / 2)
    expect(server.stats.cachedPromptTokens).toBe(1984)
  })

  it('forgets the least recently freed blocks first, a prompt’s end before its beginning', async () => {
    // 8 blocks in all; each request holds 5 (4 prompt blocks and one for the answer).
    const server = await fake({ kvCacheTokens: 128, answerTokens: 1 })
    const a = { messages: [{ role: 'user', content: text(257, 'a') }] }
    const b = { messages: [{ role: 'user', content: text(257, 'b') }] }
    await chat(server, a).then(json)
    await chat(server, b).then(json) // needs one of a's four cached blocks: its last one goes
    const res = await json(await chat(server, a))
    expect(res.usage.prompt_tokens_details.cached_tokens).toBe(3 * 16)
    expect(server.kvCache).toMatchObject({ usedBlocks: 0, totalBlocks: 8, blockSize: 16, usage: 0 })
  })

  it('never reuses a prefix with prefix caching off', async () => {
    const server = await fake({ prefixCaching: false, answerTokens: 1 })
    const body = { messages: [{ role: 'user', content: text(2000, 'p') }] }
    await chat(server, body).then(json)
    expect((await json(await chat(server, body))).usage.prompt_tokens_details.cached_tokens).toBe(0)
  })

  it('scales every delay with timeScale', async () => {
    const server = await fake({ timeToFirstTokenMs: 600_000, timePerTokenMs: 600_000, timeScale: 1e-5 })
    const body = await json(await chat(server))
    expect(body.usage.completion_tokens).toBe(16)
  })
})

describe('KV-cache capacity', () => {
  it('queues a request whose sequence does not fit, and starts it when blocks free up', async () => {
    // 4 blocks; each request asks for 41 tokens (1 prompt + 40 answer): 3 blocks.
    const server = await fake({ kvCacheTokens: 64, timePerTokenMs: 5, answerTokens: longOrShort })
    const holder = abortable()
    const held = expectingFailure(chat(server, { long: true, max_tokens: 40, stream: true }, holder.signal))
    await waitFor(() => server.stats.inFlight === 1, 'the first answer to run')
    expect(server.kvCache.usedBlocks).toBe(3)

    const waiting = chat(server, { long: true, max_tokens: 40 })
    await waitFor(() => server.stats.queued === 1, 'the second to wait for blocks')
    const busy = await metricsOf(server)
    expect(busy.get('vllm:num_requests_running')).toBe(1)
    expect(busy.get('vllm:num_requests_waiting')).toBe(1)
    expect(busy.get('vllm:kv_cache_usage_perc')).toBe(0.75)

    holder.abort()
    await Promise.allSettled([held])
    const answer = await json(await waiting)
    expect(answer.usage.completion_tokens).toBe(40)
    expect(answer.choices[0].finish_reason).toBe('length')
    const idle = await metricsOf(server)
    expect([idle.get('vllm:num_requests_running'), idle.get('vllm:num_requests_waiting')]).toEqual([0, 0])
    expect(idle.get('vllm:kv_cache_usage_perc')).toBe(0)
  })

  it('lets the queue move on when the request at its head leaves', async () => {
    // 4 blocks: the running answer holds 3, the head of the queue needs 3, the one behind it 1.
    const server = await fake({ kvCacheTokens: 64, timePerTokenMs: 1000, answerTokens: longOrShort })
    const holder = abortable()
    const held = expectingFailure(chat(server, { long: true, max_tokens: 40, stream: true }, holder.signal))
    await waitFor(() => server.stats.inFlight === 1, 'the first answer to run')
    const head = abortable()
    const big = expectingFailure(chat(server, { long: true, max_tokens: 40 }, head.signal))
    await waitFor(() => server.stats.queued === 1, 'the big one to wait')
    const small = chat(server, { max_tokens: 1 })
    await waitFor(() => server.stats.queued === 2, 'the small one to wait behind it')
    expect(server.stats.inFlight).toBe(1)

    head.abort()
    expect((await json(await small)).usage.completion_tokens).toBe(1)
    holder.abort()
    await Promise.allSettled([held, big])
  })

  it('counts a queue full of requests waiting for blocks against queueLimit', async () => {
    const server = await fake({
      kvCacheTokens: 32,
      queueLimit: 0,
      timePerTokenMs: 5,
      answerTokens: longOrShort,
    })
    const holder = abortable()
    const held = expectingFailure(chat(server, { long: true, max_tokens: 20, stream: true }, holder.signal))
    await waitFor(() => server.stats.inFlight === 1, 'the first answer to run')
    const rejected = await chat(server, { max_tokens: 20, long: true })
    expect(rejected.status).toBe(503)
    expect((await json(rejected)).error.code).toBe('queue_full')
    holder.abort()
    await Promise.allSettled([held])
  })

  it('refuses a prompt longer than the cache, and cuts an answer where the cache ends', async () => {
    const server = await fake({ kvCacheTokens: 64, answerTokens: 1000 })
    const tooLong = await chat(server, { messages: [{ role: 'user', content: text(400, 'x') }] })
    expect(tooLong.status).toBe(400)
    expect((await json(tooLong)).error).toMatchObject({ code: 'context_length_exceeded', param: 'messages' })
    const cut = await json(await chat(server, { messages: [{ role: 'user', content: text(40, 'y') }] }))
    expect(cut.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 54 })
    expect(cut.choices[0].finish_reason).toBe('length')
  })
})

describe('usage on streams', () => {
  it('sends no usage at all unless stream_options.include_usage is set', async () => {
    const server = await fake({ answerTokens: 3 })
    const data: string[] = []
    for await (const d of sseData(await chat(server, { stream: true }))) data.push(d)
    expect(data.at(-1)).toBe('[DONE]')
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d))
    expect(chunks.some((c) => 'usage' in c)).toBe(false)
    expect(chunks.every((c) => c.choices.length === 1)).toBe(true)
    expect(chunks.at(-1).choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' })
    expect(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true)
  })

  it('with include_usage: usage null on every chunk, then one usage chunk with no choices', async () => {
    const server = await fake({ answerTokens: 3 })
    const body = { messages: [{ role: 'user', content: text(400, 'u') }], stream: true }
    await chat(server, body).then((r) => r.text())
    const data: string[] = []
    for await (const d of sseData(await chat(server, { ...body, stream_options: { include_usage: true } })))
      data.push(d)
    expect(data.at(-1)).toBe('[DONE]')
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d))
    const last = chunks.at(-1)
    expect(last.choices).toEqual([])
    expect(last.usage).toEqual({
      prompt_tokens: 100,
      completion_tokens: 3,
      total_tokens: 103,
      prompt_tokens_details: { cached_tokens: 96 },
    })
    expect(chunks.slice(0, -1).every((c) => c.usage === null && c.choices.length === 1)).toBe(true)
    expect(chunks.at(-2).choices[0].finish_reason).toBe('stop')
  })
})

describe('/metrics', () => {
  it('speaks vLLM by default, with the model name and engine labels', async () => {
    const server = await fake({ models: ['meta-llama/Llama-3.1-8B-Instruct'] })
    const body = await (await fetch(`${server.url}/metrics`)).text()
    expect(body).toContain('# TYPE vllm:num_requests_waiting gauge\n')
    expect(body).toContain(
      'vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0\n',
    )
    expect(body).toContain('# TYPE vllm:prefix_cache_hits_total counter\n')
    expect(body).not.toContain('gpu_cache_usage_perc')
  })

  it('leaves lastRequest to the requests under test', async () => {
    const server = await fake()
    await chat(server, { tag: 'mine' }).then(json)
    await (await fetch(`${server.url}/metrics`)).text()
    expect(JSON.parse(server.lastRequest?.body.toString() ?? '{}').tag).toBe('mine')
    expect(server.stats.metricsRequests).toBe(1)
  })

  it.each([
    ['vllm-v0', ['vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:gpu_cache_usage_perc']],
    ['sglang', ['sglang:num_running_reqs', 'sglang:num_queue_reqs', 'sglang:token_usage']],
    ['tgi', ['tgi_batch_current_size', 'tgi_queue_size', 'tgi_batch_current_max_tokens']],
    ['llamacpp', ['llamacpp:requests_processing', 'llamacpp:requests_deferred', null]],
  ] as const)('emits %s names instead, with running, waiting and KV load', async (format, names) => {
    const server = await fake({
      metricsFormat: format,
      kvCacheTokens: 64,
      capacity: 1,
      timePerTokenMs: 1000,
      answerTokens: longOrShort,
    })
    const holder = abortable()
    const held = expectingFailure(chat(server, { long: true, max_tokens: 31, stream: true }, holder.signal))
    await waitFor(() => server.stats.inFlight === 1, 'one answer running')
    const queued = expectingFailure(chat(server, {}, abortable().signal))
    await waitFor(() => server.stats.queued === 1, 'one answer waiting')
    const metrics = await metricsOf(server)
    const [running, waiting, kv] = names
    expect(metrics.get(running)).toBe(1)
    expect(metrics.get(waiting)).toBe(1)
    // TGI has no KV usage; it reports the token budget of the running batch instead. llama-server
    // reports neither.
    if (kv === null) expect([...metrics.keys()].some((name) => /kv_cache/.test(name))).toBe(false)
    else expect(metrics.get(kv)).toBe(format === 'tgi' ? 32 : 0.5)
    expect([...metrics.keys()].every((name) => !name.startsWith('vllm:') || format === 'vllm-v0')).toBe(true)
    holder.abort()
    await Promise.allSettled([held, queued])
  })

  it('answers 404 with metrics off, and fails with the failure modes like every other path', async () => {
    const off = await fake({ metricsFormat: 'none' })
    expect((await fetch(`${off.url}/metrics`)).status).toBe(404)
    expect(off.stats).toMatchObject({ requests: 1, metricsRequests: 1 })
    const failing = await fake({ failureMode: 'error-500' })
    expect((await fetch(`${failing.url}/metrics`)).status).toBe(500)
    await expect(startFakeModelServer({ metricsFormat: 'prom' as MetricsFormat })).rejects.toThrow(
      /Unknown metrics format/,
    )
  })

  it('offers vLLM-like numbers as a preset', async () => {
    const server = await fake({ ...VLLM_LLAMA_8B_A100, timeScale: 0.01, answerTokens: 4 })
    const body = await json(await chat(server))
    expect(body.usage.completion_tokens).toBe(4)
    expect(server.kvCache.totalBlocks).toBe(Math.floor(450_000 / 16))
  })
})

describe('LoRA adapters', () => {
  /** The current series of `vllm:lora_requests_info`: the one with the latest timestamp. */
  async function loraInfo(server: FakeModelServer): Promise<{ series: number; current: string }> {
    const text = await (await fetch(`${server.url}/metrics`)).text()
    const lines = text.split('\n').filter((l) => l.startsWith('vllm:lora_requests_info{'))
    const at = (line: string) => Number(line.slice(line.lastIndexOf(' ') + 1))
    const current = lines.reduce((a, b) => (at(b) >= at(a) ? b : a), '')
    return { series: lines.length, current: current.slice(0, current.lastIndexOf(' ')) }
  }

  it('serves adapters as models, at most maxLoras in a batch, and reports them as vLLM does', async () => {
    const server = await fake({
      name: 'lora',
      models: ['base'],
      loraAdapters: ['a', 'b'],
      maxLoras: 1,
      capacity: 8,
      timePerTokenMs: 10,
      answerTokens: longOrShort,
    })
    const models = await json(await fetch(`${server.url}/v1/models`))
    expect(models.data.map((m: { id: string }) => m.id)).toEqual(['base', 'a', 'b'])
    expect(models.data[1]).toMatchObject({ object: 'model', parent: 'base' })
    expect(await loraInfo(server)).toEqual({
      series: 1,
      current: 'vllm:lora_requests_info{max_lora="1",running_lora_adapters="",waiting_lora_adapters=""}',
    })

    const holder = abortable()
    const held = expectingFailure(chat(server, { model: 'a', long: true }, holder.signal))
    await waitFor(() => server.stats.inFlight === 1, 'a running')
    // b would be a second adapter in the batch: it waits, and the base model and a go past it.
    const b = chat(server, { model: 'b' })
    await waitFor(() => server.stats.queued === 1, 'b waiting')
    expect((await chat(server, { model: 'base' })).status).toBe(200)
    expect((await chat(server, { model: 'a' })).status).toBe(200)
    expect(server.stats.queued).toBe(1)
    const busy = await loraInfo(server)
    expect(busy.current).toBe(
      'vllm:lora_requests_info{max_lora="1",running_lora_adapters="a",waiting_lora_adapters="b"}',
    )
    expect(busy.series).toBe(2)
    expect(server.stats.loraLoads).toBe(1)

    holder.abort()
    expect((await b).status).toBe(200)
    await Promise.allSettled([held])
    // b took the one slot from a: a second load.
    expect(server.stats.loraLoads).toBe(2)
    expect((await loraInfo(server)).current).toContain('running_lora_adapters="",waiting_lora_adapters=""')
    expect((await chat(server, { model: 'c' })).status).toBe(404)
  })

  it('refuses adapters it cannot serve', async () => {
    await expect(startFakeModelServer({ maxLoras: 2 })).rejects.toThrow(/maxLoras needs loraAdapters/)
    await expect(startFakeModelServer({ loraAdapters: ['fake-model'] })).rejects.toThrow(/also a base model/)
    await expect(startFakeModelServer({ loraAdapters: ['a,b'] })).rejects.toThrow(/not an adapter name/)
  })
})

describe('other endpoints and errors', () => {
  it('lists its models', async () => {
    const server = await fake({ name: 'm', models: ['llama-3-8b', 'qwen-2'] })
    const res = await fetch(`${server.url}/v1/models`)
    expect(res.status).toBe(200)
    const body = await json(res)
    expect(body.object).toBe('list')
    expect(body.data.map((m: { id: string }) => m.id)).toEqual(['llama-3-8b', 'qwen-2'])
    expect(body.data[0]).toMatchObject({ object: 'model', owned_by: 'm' })
    expect((await chat(server, { model: 'qwen-2' })).status).toBe(200)
  })

  it('answers 404 for an unknown model and an unknown path', async () => {
    const server = await fake()
    const res = await chat(server, { model: 'gpt-17' })
    expect(res.status).toBe(404)
    expect((await json(res)).error).toMatchObject({ code: 'model_not_found', param: 'model' })
    const path = await fetch(`${server.url}/v2/nothing`)
    expect(path.status).toBe(404)
    expect((await json(path)).error.message).toEqual(expect.any(String))
    expect(server.stats.completed).toBe(0)
  })

  it('answers 400 for malformed JSON', async () => {
    const server = await fake()
    const res = await post(server, '/v1/chat/completions', '{"model": "fake-model",')
    expect(res.status).toBe(400)
    expect((await json(res)).error).toMatchObject({ type: 'invalid_request_error' })
    const notObject = await post(server, '/v1/completions', '[1, 2]')
    expect(notObject.status).toBe(400)
    await notObject.arrayBuffer()
  })
})

describe('robustness', () => {
  it('fails one request, not the server, when answerTokens throws', async () => {
    const server = await fake({
      answerTokens: (_random, body) => {
        if (body.boom) throw new Error('boom')
        return 2
      },
    })
    const res = await chat(server, { boom: true })
    expect(res.status).toBe(500)
    expect((await json(res)).error.message).toBe('boom')
    expect((await chat(server)).status).toBe(200)
  })
})

describe('lifecycle', () => {
  it('close() ends stalled and generating requests and resolves', async () => {
    const server = await startFakeModelServer({ timePerTokenMs: 10, answerTokens: 100_000 })
    const streaming = await chat(server, { stream: true })
    const reading = expectingFailure(streaming.text())
    server.setFailureMode('stall')
    const stalled = expectingFailure(chat(server))
    await waitFor(() => server.stats.requests === 2, 'the stalled request')
    await server.close()
    await server.close()
    await expect(reading).rejects.toThrow()
    await expect(stalled).rejects.toThrow()
    expect(server.server.listening).toBe(false)
  })

  it('runs from the command line and prints its URL', async () => {
    const script = fileURLToPath(new URL('../examples/fake-model-server.js', import.meta.url))
    const child = spawn(
      process.execPath,
      [script, '--port', '0', '--name', 'cli', '--tpt', '1', '--capacity', '4'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    )
    try {
      const lines = createInterface({ input: child.stdout })
      const [url] = (await once(lines, 'line')) as [string]
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      const res = await fetch(`${url}/health`)
      expect(res.headers.get('x-backend')).toBe('cli')
      expect(await json(res)).toEqual({ status: 'ok', name: 'cli' })
    } finally {
      child.kill('SIGTERM')
    }
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
  })
})
