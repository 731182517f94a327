import { afterEach, describe, expect, it } from 'vitest'
import type { FakeModelServer } from '../../examples/fake-model-server.js'
import { Cleanup, chat, fake, send, waitFor } from '../helpers/http.js'
import { sampleValue, scrape } from '../helpers/metrics-text.js'
import { configFile, startCli } from './support.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

function prompt(name: string): Record<string, unknown> {
  const system = `${name}: ${'you answer questions about the house rules and cite their sources. '.repeat(30)}`
  return chat({
    messages: [
      { role: 'system', content: system },
      { role: 'user', content: 'and?' },
    ],
    max_tokens: 1,
  })
}

function direct(backend: FakeModelServer, body: Record<string, unknown>) {
  return send(Number(new URL(backend.url).port), { path: '/v1/chat/completions', body })
}

describe('tollgate serve: precise-prefix', () => {
  it('routes a prompt to the backend whose KV events say it holds it, from the YAML file', async () => {
    const fakes = await Promise.all(['a', 'b'].map((name) => fake(cleanup, { name, kvEvents: {} })))
    const list = fakes
      .map((f) => `  - { url: "${f.url}", id: ${f.name}, kvEvents: "${f.kvEvents!.endpoint}" }`)
      .join('\n')
    const file = configFile(`listen: { host: 127.0.0.1, port: 0 }
strategy: precise-prefix
precisePrefix: { tokenizeTimeoutMs: 10000 }
metrics: { path: /metrics }
backends:
${list}
routes:
  - { method: POST, path: /v1/chat/completions, forward: true }
`)
    const { port } = await startCli(cleanup, file.path)
    const blocks = async (id: string) =>
      sampleValue(await scrape(port, '/metrics', ['tollgate_kv_index_blocks']), 'tollgate_kv_index_blocks', {
        backend: id,
      }) ?? 0
    // The SUB socket connects in the background: probe b until its events arrive.
    for (let probe = 0; (await blocks('b')) === 0; probe++) {
      await direct(fakes[1]!, chat({ messages: [{ role: 'user', content: `probe ${probe} `.repeat(40) }] }))
      const deadline = Date.now() + 200
      while ((await blocks('b')) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    }
    const before = await blocks('b')
    expect((await direct(fakes[1]!, prompt('north'))).status).toBe(200)
    await waitFor(async () => (await blocks('b')) > before, "north's blocks on b")
    for (let i = 0; i < 2; i++) {
      const answer = await send(port, { path: '/v1/chat/completions', body: prompt('north') })
      expect(answer.headers['x-backend']).toBe('b')
      expect(answer.json().usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(0)
    }
  })
})
