import { afterEach, describe, expect, it } from 'vitest'
import { type Answer, abortable, Cleanup, chat, countBy, fake, send, waitFor } from './helpers/http.js'
import { ROUTING_GATEWAYS } from './helpers/routing-gateways.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

function systemPrompt(name: string): string {
  return `${name}: you are the assistant of ${name}. ${'Follow the house rules and cite sources. '.repeat(40)}`
}

function turn(system: string, n: number): Record<string, unknown> {
  const messages: { role: string; content: string }[] = [{ role: 'system', content: system }]
  for (let i = 0; i < n; i++) {
    messages.push({ role: 'user', content: `question ${i}` }, { role: 'assistant', content: `answer ${i}` })
  }
  messages.push({ role: 'user', content: `question ${n}` })
  return chat({ messages, max_tokens: 2 })
}

function ask(port: number, body: Record<string, unknown> = chat({ max_tokens: 2 })): Promise<Answer> {
  return send(port, { path: '/v1/chat/completions', body })
}

async function sequential(port: number, n: number): Promise<Answer[]> {
  const answers: Answer[] = []
  for (let i = 0; i < n; i++) answers.push(await ask(port))
  return answers
}

describe.each(ROUTING_GATEWAYS)('%s: prefix affinity', (_name, start) => {
  it('keeps each conversation on the backend holding its prefix, so the server answers from its cache', async () => {
    const fakes = await Promise.all(['a', 'b', 'c'].map((name) => fake(cleanup, { name })))
    const { port } = await start(cleanup, {
      backends: fakes.map((f) => ({ id: f.name, url: f.url })),
      strategy: 'prefix-affinity',
    })
    const conversations = ['north', 'south', 'east', 'west'].map(systemPrompt)
    const servedBy = new Map<string, Set<string>>()
    const cached: number[] = []
    for (let n = 0; n < 4; n++) {
      for (const system of conversations) {
        const answer = await ask(port, turn(system, n))
        expect(answer.status).toBe(200)
        const set = servedBy.get(system) ?? new Set()
        set.add(String(answer.headers['x-backend']))
        servedBy.set(system, set)
        if (n > 0) cached.push(answer.json().usage.prompt_tokens_details.cached_tokens)
      }
    }
    for (const set of servedBy.values()) expect(set.size).toBe(1)
    // The conversations did not all pile onto one backend either.
    expect(new Set([...servedBy.values()].map((s) => [...s][0])).size).toBeGreaterThan(1)
    expect(cached.every((tokens) => tokens > 0)).toBe(true)
  })

  it('spreads new conversations sent one after another, and keeps their later turns at home', async () => {
    const fakes = await Promise.all(['a', 'b', 'c'].map((name) => fake(cleanup, { name })))
    const { port } = await start(cleanup, {
      backends: fakes.map((f) => ({ id: f.name, url: f.url })),
      strategy: 'prefix-affinity',
    })
    // Twelve distinct system prompts of ~3,000 characters, each conversation opened in turn.
    const conversations = Array.from({ length: 12 }, (_, i) =>
      `conversation ${i}: ${'Answer in the voice of the house and cite the sources you use. '.repeat(48)}`.slice(
        0,
        3_000,
      ),
    )
    const home = new Map<string, string>()
    const firstTurns: Answer[] = []
    for (const system of conversations) {
      const answer = await ask(port, turn(system, 0))
      expect(answer.status).toBe(200)
      firstTurns.push(answer)
      home.set(system, String(answer.headers['x-backend']))
    }
    const opened = countBy(firstTurns)
    expect(Object.keys(opened).length).toBe(3)
    expect(Math.max(...Object.values(opened))).toBeLessThanOrEqual(5)
    let atHome = 0
    let later = 0
    for (let n = 1; n < 4; n++) {
      for (const system of conversations) {
        const answer = await ask(port, turn(system, n))
        later++
        if (answer.headers['x-backend'] === home.get(system)) atHome++
      }
    }
    expect(atHome / later).toBeGreaterThanOrEqual(0.9)
  })

  it('yields to load: a hot prefix spreads once its backend is past the bound', async () => {
    const fakes = await Promise.all(
      ['a', 'b', 'c'].map((name) => fake(cleanup, { name, timePerTokenMs: 20, answerTokens: 200 })),
    )
    const { port, backends } = await start(cleanup, {
      backends: fakes.map((f) => ({ id: f.name, url: f.url })),
      strategy: 'prefix-affinity',
      prefixAffinity: { loadFactor: 0.5 },
    })
    const hot = turn(systemPrompt('hot'), 2)
    for (let i = 0; i < 6; i++) {
      const { abort } = abortable(port, { body: { ...hot, max_tokens: 200 } })
      cleanup.add(() => abort(), null)
      // One at a time, so each pick sees the previous one in flight.
      await waitFor(
        () => backends.snapshot().reduce((sum, b) => sum + b.inFlight, 0) === i + 1,
        'the request in flight',
      )
    }
    const inFlight = backends.snapshot().map((b) => b.inFlight)
    expect(Math.max(...inFlight)).toBeLessThanOrEqual(3)
    expect(inFlight.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2)
  })
})

describe.each(ROUTING_GATEWAYS)('%s: zones', (_name, start) => {
  async function twoZones(maxConcurrency?: number) {
    const local = await fake(cleanup, { name: 'local', timePerTokenMs: 20, answerTokens: 200 })
    const remote = await fake(cleanup, { name: 'remote' })
    const far = await fake(cleanup, { name: 'far' })
    const gateway = await start(cleanup, {
      backends: [
        { id: 'far', url: far.url, zone: 'eu-west-1c' },
        { id: 'local', url: local.url, zone: 'eu-west-1a', ...(maxConcurrency ? { maxConcurrency } : {}) },
        { id: 'remote', url: remote.url, zone: 'eu-west-1b' },
      ],
      zone: 'eu-west-1a',
      zonePreference: ['eu-west-1b'],
      health: { outlier: { consecutiveFailures: 2, baseEjectionMs: 200, maxEjectionPercent: 50 } },
    })
    return { ...gateway, local }
  }

  it('stays local while healthy, spills to the preferred zone when local is draining, and comes back', async () => {
    const { port, backends } = await twoZones()
    expect(countBy(await sequential(port, 4))).toEqual({ local: 4 })
    void backends.drain('local')
    expect(countBy(await sequential(port, 3))).toEqual({ remote: 3 })
    backends.undrain('local')
    expect(countBy(await sequential(port, 2))).toEqual({ local: 2 })
    expect(backends.zones().map((z) => [z.zone, z.rank, z.totalRequests, z.spilledRequests])).toEqual([
      ['eu-west-1a', 0, 6, 0],
      ['eu-west-1b', 1, 3, 3],
      ['eu-west-1c', 2, 0, 0],
    ])
  })

  it('spills when the local backend is at maxConcurrency instead of queueing, and returns when it frees', async () => {
    const { port, backends } = await twoZones(1)
    const { abort } = abortable(port, { body: chat({ max_tokens: 200 }) })
    await waitFor(() => backends.get('local')?.inFlight === 1, 'the long request on the local backend')
    expect(countBy(await sequential(port, 2))).toEqual({ remote: 2 })
    abort()
    await waitFor(() => backends.get('local')?.inFlight === 0, 'the local backend to be free')
    expect(countBy(await sequential(port, 2))).toEqual({ local: 2 })
  })

  it('spills while the local backend is ejected and returns after the ejection', async () => {
    const { port, backends, local } = await twoZones()
    local.setFailureMode('reset')
    const answers = await sequential(port, 3)
    // The failed attempts were retried in the next zone.
    expect(countBy(answers)).toEqual({ remote: 3 })
    expect(backends.get('local')?.status).toBe('ejected')
    local.setFailureMode('none')
    await waitFor(() => backends.get('local')?.status === 'healthy', 'the ejection to end')
    expect(countBy(await sequential(port, 2))).toEqual({ local: 2 })
  })
})
