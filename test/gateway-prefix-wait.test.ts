import type { BackendSnapshot } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { FakeModelServer } from '../examples/fake-model-server.js'
import { type Answer, abortable, Cleanup, chat, fake, send, waitFor } from './helpers/http.js'
import { ROUTING_GATEWAYS } from './helpers/routing-gateways.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

// Three servers of two batch slots that report their queue in llama.cpp's names. A cold prompt of
// ~1,500 tokens takes ~375 ms to prefill; a cached one almost nothing.
const SERVER = {
  capacity: 2,
  metricsFormat: 'llamacpp',
  prefillTokensPerSecond: 4_000,
  timePerTokenMs: 5,
  answerTokens: 2_000,
} as const

function prompt(name: string): string {
  return `${name}: ${'Answer as the house assistant, in the house style, with sources. '.repeat(92)}`
}

function ask(port: number, system: string, maxTokens = 2): Promise<Answer> {
  const messages = [
    { role: 'system', content: system },
    { role: 'user', content: 'hello' },
  ]
  return send(port, { path: '/v1/chat/completions', body: chat({ messages, max_tokens: maxTokens }) })
}

/** Long answers sent straight to a server: its slots fill with load this gateway does not route. */
function occupy(backend: FakeModelServer, requests: number): () => void {
  const aborts = Array.from({ length: requests }, () => {
    const { abort } = abortable(backend.port, { body: chat({ max_tokens: 2_000 }) })
    cleanup.add(() => abort(), null)
    return abort
  })
  return () => {
    for (const abort of aborts) abort()
  }
}

function reportOf(snapshot: BackendSnapshot[], id: string) {
  return snapshot.find((s) => s.id === id)?.loadReport
}

describe.each(ROUTING_GATEWAYS)('%s: prefix affinity against a cold prefill', (_name, start) => {
  it('waits for the busy server that holds the prompt rather than prefilling it cold elsewhere, and keeps it home after a spill', async () => {
    const fakes = await Promise.all(['a', 'b', 'c'].map((name) => fake(cleanup, { ...SERVER, name })))
    const byName = new Map(fakes.map((f) => [f.name, f]))
    const { port, backends } = await start(cleanup, {
      backends: fakes.map((f) => ({ id: f.name, url: f.url, metrics: 'llamacpp' as const })),
      strategy: 'prefix-affinity',
      // maxWaiting above the queues below: the picker, not the saturation filter, decides.
      loadReports: { intervalMs: 20, timeoutMs: 20, staleAfterMs: 2_000, maxWaiting: 50 },
    })
    const idle = () =>
      backends.snapshot().every((b) => b.loadReport?.running === 0 && b.loadReport.waiting === 0)

    // Each server once shows a full batch with a queue behind it: the gateway learns its two slots.
    for (const f of fakes) {
      const release = occupy(f, 3)
      await waitFor(() => reportOf(backends.snapshot(), f.name)?.waiting === 1, `a queue on ${f.name}`)
      release()
    }
    await waitFor(idle, 'the servers to be idle')
    // Cold and cached prompts one after another: the gateway learns what a cold block costs.
    for (let i = 0; i < 6; i++) {
      const system = prompt(`warm-up ${i}`)
      expect((await ask(port, system)).status).toBe(200)
      expect((await ask(port, system)).status).toBe(200)
    }

    const hot = prompt('hot')
    const home = String((await ask(port, hot)).headers['x-backend'])
    const homeServer = byName.get(home) as FakeModelServer
    // Both of the home's slots busy: a short wait there beats ~375 ms of cold prefill elsewhere.
    let release = occupy(homeServer, 2)
    await waitFor(() => reportOf(backends.snapshot(), home)?.running === 2, 'the home to be full')
    const waited = ask(port, hot)
    await waitFor(() => backends.get(home)?.inFlight === 1, 'the request to be routed')
    release()
    const answer = await waited
    expect(answer.headers['x-backend']).toBe(home)
    expect(answer.json().usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(1_000)

    // Ten queued there: now the cold prefill elsewhere is the quicker, and the request spills.
    release = occupy(homeServer, 12)
    await waitFor(() => (reportOf(backends.snapshot(), home)?.waiting ?? 0) >= 10, 'a long queue at home')
    const spilled = await ask(port, hot)
    expect(spilled.headers['x-backend']).not.toBe(home)
    release()
    await waitFor(idle, 'the servers to be idle')
    // The spill did not make a second home: the prompt's next requests all go back to the first.
    for (let i = 0; i < 4; i++) expect((await ask(port, hot)).headers['x-backend']).toBe(home)
  }, 30_000)
})
