// A real llama-server behind each adapter: what the client gets through the gateway is what the
// server would have sent it directly, byte for byte, streams included, and the official SDK works.
import OpenAI from 'openai'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Cleanup } from '../helpers/cleanup.js'
import { send } from '../helpers/http.js'
import { startEngineGateway, withoutRunFields } from './engine-gateways.js'
import { describeWithEngine, engineOrSkip, type LlamaServer, startLlamaServer } from './llama-servers.js'

const engine = engineOrSkip()
const servers = new Cleanup()
let llama: LlamaServer

beforeAll(async () => {
  if (engine !== null) llama = await startLlamaServer(servers, engine)
}, 60_000)
afterAll(() => servers.run())

const cleanup = new Cleanup()

// Greedy and uncached, so that two runs of a request produce the same tokens and the same usage.
const request = (extra: Record<string, unknown> = {}) => ({
  messages: [{ role: 'user', content: 'Say something about gateways.' }],
  max_tokens: 12,
  temperature: 0,
  cache_prompt: false,
  ...extra,
})

async function direct(body: object) {
  return send(llama.port, { path: '/v1/chat/completions', body })
}

describeWithEngine(engine).each(['Fastify', 'Express'] as const)('llama-server through %s', (framework) => {
  const gateway = () =>
    startEngineGateway(cleanup, framework, { options: { backends: [{ url: llama.url }] } })

  it('passes a JSON completion on byte for byte', async () => {
    const gw = await gateway()
    try {
      const expected = await direct(request())
      const answer = await send(gw.port, { path: '/v1/chat/completions', body: request() })
      expect(answer.status).toBe(200)
      expect(answer.headers['content-type']).toBe(expected.headers['content-type'])
      expect(answer.json().usage.completion_tokens).toBe(12)
      expect(withoutRunFields(answer.text())).toBe(withoutRunFields(expected.text()))
    } finally {
      await cleanup.run()
    }
  })

  it.each([
    ['without usage', {}],
    ['with usage', { stream_options: { include_usage: true } }],
  ])('passes an event stream on byte for byte, %s', async (_, extra) => {
    const gw = await gateway()
    try {
      const body = request({ stream: true, ...extra })
      const expected = await direct(body)
      const answer = await send(gw.port, { path: '/v1/chat/completions', body })
      expect(answer.status).toBe(200)
      expect(answer.complete).toBe(true)
      expect(answer.headers['content-type']).toBe('text/event-stream')
      expect(withoutRunFields(answer.text())).toBe(withoutRunFields(expected.text()))
      expect(answer.text().endsWith('data: [DONE]\n\n')).toBe(true)
      expect(answer.text().includes('"usage":{')).toBe('stream_options' in extra)
    } finally {
      await cleanup.run()
    }
  })

  it('serves the official openai SDK, plain and streamed', async () => {
    const gw = await gateway()
    try {
      const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-test', maxRetries: 0 })
      const expected = (await direct(request())).json().choices[0].message.content
      const completion = await client.chat.completions.create({
        model: 'tiny',
        ...request(),
      } as OpenAI.ChatCompletionCreateParamsNonStreaming)
      expect(completion.choices[0]!.message.content).toBe(expected)
      expect(completion.usage!.completion_tokens).toBe(12)

      const stream = await client.chat.completions.create({
        model: 'tiny',
        ...request(),
        stream: true,
        stream_options: { include_usage: true },
      } as OpenAI.ChatCompletionCreateParamsStreaming)
      let text = ''
      let usage: OpenAI.CompletionUsage | undefined | null
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? ''
        usage = chunk.usage ?? usage
      }
      expect(text).toBe(expected)
      expect(usage).toMatchObject({ completion_tokens: 12, prompt_tokens: completion.usage!.prompt_tokens })
    } finally {
      await cleanup.run()
    }
  })
})
