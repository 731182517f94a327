// examples/gateway-llama.yaml, served by the CLI exactly as examples/README.md says, in front of
// three real llama-servers.
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startCli } from '../cli/support.js'
import { Cleanup } from '../helpers/cleanup.js'
import { send } from '../helpers/http.js'
import { waitFor } from '../helpers/wait.js'
import { describeWithEngine, engineOrSkip, type LlamaServer, startLlamaServer } from './llama-servers.js'

const engine = engineOrSkip()
const cleanup = new Cleanup()
let servers: LlamaServer[] = []

beforeAll(async () => {
  if (engine === null) return
  servers = await Promise.all([1, 2, 3].map(() => startLlamaServer(cleanup, engine)))
}, 60_000)
afterAll(() => cleanup.run())

const config = fileURLToPath(new URL('../../examples/gateway-llama.yaml', import.meta.url))

describeWithEngine(engine)('examples/gateway-llama.yaml', () => {
  it('serves chat, streams and the native API from real llama-servers, reading their load', async () => {
    const env = Object.fromEntries(servers.map((s, i) => [`LLAMA_PORT_${i + 1}`, String(s.port)]))
    const { port } = await startCli(cleanup, config, { env })
    const messages = [{ role: 'user', content: 'hello' }]

    const answer = await send(port, { path: '/v1/chat/completions', body: { messages, max_tokens: 4 } })
    expect(answer.status).toBe(200)
    expect(answer.json().usage.completion_tokens).toBe(4)
    const stream = await send(port, {
      path: '/v1/chat/completions',
      body: { messages, max_tokens: 4, stream: true },
    })
    expect(stream.text().endsWith('data: [DONE]\n\n')).toBe(true)
    const native = await send(port, { path: '/completion', body: { prompt: 'hello', n_predict: 4 } })
    expect(native.json().tokens_predicted).toBe(4)

    // Scraped: each backend's report is fresh (`tollgate_backend_report_stale` 0).
    await waitFor(
      async () => {
        const text = (await send(port, { path: '/metrics' })).text()
        return ['llama-1', 'llama-2', 'llama-3'].every((id) =>
          text.includes(`tollgate_backend_report_stale{backend="${id}"} 0`),
        )
      },
      'a fresh load report from every llama-server',
      10_000,
    )
    const rows: { id: string; totalErrors: number }[] = (
      await send(port, { path: '/gateway/status.json' })
    ).json().backends
    expect(rows.map((row) => [row.id, row.totalErrors])).toEqual([
      ['llama-1', 0],
      ['llama-2', 0],
      ['llama-3', 0],
    ])
  })
})
