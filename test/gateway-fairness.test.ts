import type { BackendsHandle, FairnessOptions } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup } from './helpers/cleanup.js'
import { type Framework, startExpress, startFastify } from './helpers/gateways.js'
import { type Answer, abortable, chat, fake, type OpenStream, openStream, send } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const PATH = '/v1/chat/completions'

interface Setup {
  port: number
  backends: BackendsHandle
  /** Who the backend served, in order (the `user` field of each body it admitted). */
  served: string[]
}

/**
 * A gateway in front of one backend with one slot, whose tenant is the (trusted) `x-tenant-id`. A request whose body says `hold` streams for
 * minutes, so the test decides when the slot frees (by cutting it off): every schedule below is
 * fixed before the first slot frees, and the assertions count who was served, never how fast.
 */
async function start(
  framework: Framework,
  fairness: FairnessOptions<never>,
  queue: { size?: number; timeoutMs?: number } = {},
): Promise<Setup> {
  const served: string[] = []
  const backend = await fake(cleanup, {
    timePerTokenMs: 1,
    answerTokens: (_random, body) => {
      served.push(String(body.user))
      return body.hold === true ? 1_000_000 : 1
    },
  })
  const options = {
    backends: [{ url: backend.url, id: 'gpu', maxConcurrency: 1 }],
    fairness: { trustTenantHeader: true, ...fairness },
    queue,
  }
  if (framework === 'Fastify') {
    const { app, port } = await startFastify(cleanup, options as never, (app) => {
      app.post(PATH, app.tollgate.forward())
    })
    return { port, backends: app.tollgate.backends, served }
  }
  const { gate, port } = await startExpress(cleanup, options as never, (app, gate) => {
    app.post(PATH, gate.forward())
  })
  return { port, backends: gate.backends, served }
}

function ask(port: number, tenant: string, headers: Record<string, string> = {}): Promise<Answer> {
  return send(port, {
    path: PATH,
    body: chat({ user: tenant }),
    headers: { 'x-tenant-id': tenant, ...headers },
  })
}

/** A request that holds the slot once served, until the test aborts it. */
function hold(port: number, tenant: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  return openStream(port, {
    body: chat({ user: tenant, hold: true, stream: true }),
    headers: { 'x-tenant-id': tenant, ...headers },
  })
}

async function waiting(s: Setup, n: number): Promise<void> {
  await waitFor(() => s.backends.queue().waiting === n, `${n} requests to wait`)
}

/**
 * Serves one request of each tenant from the queue, so each has a share of its own (a tenant not
 * served before shares one with every other such tenant); `served` starts afresh.
 */
async function establish(s: Setup, ...tenants: string[]): Promise<void> {
  const blocker = await hold(s.port, 'blocker')
  const answers = tenants.map((tenant) => ask(s.port, tenant))
  await waiting(s, tenants.length)
  blocker.abort()
  await Promise.all(answers)
  s.served.length = 0
}

function count(list: string[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const item of list) counts[item] = (counts[item] ?? 0) + 1
  return counts
}

const byHeader = ((request: { headers: Record<string, string | undefined> }) => {
  const p = request.headers['x-priority']
  return p === undefined ? 'standard' : Number.isNaN(Number(p)) ? p : Number(p)
}) as never

describe.each(['Fastify', 'Express'] as const)('%s: fair shares of a full backend', (framework) => {
  it('serves a light tenant as often as a heavy one that queued first', async () => {
    const s = await start(framework, {})
    await establish(s, 'heavy', 'light')
    const blocker = await hold(s.port, 'blocker')
    const answers = [
      ...Array.from({ length: 12 }, () => ask(s.port, 'heavy')),
      ...Array.from({ length: 4 }, () => ask(s.port, 'light')),
    ]
    await waiting(s, 16)
    blocker.abort()
    await Promise.all(answers)
    expect(count(s.served.slice(1, 9))).toEqual({ heavy: 4, light: 4 })
    const tenants = Object.fromEntries(s.backends.queue().tenants.map((t) => [t.tenant, t]))
    // The two requests served while they were new count to the class they shared.
    expect(tenants.heavy).toMatchObject({ waiting: 0, served: 12, servedShare: 12 / 18 })
    expect(tenants.light).toMatchObject({ waiting: 0, served: 4, servedShare: 4 / 18 })
    expect(tenants['(new)']).toMatchObject({ newcomers: true, served: 2, servedShare: 2 / 18 })
  })

  it('splits the slots 3:1 by weight', async () => {
    const s = await start(framework, { weights: { gold: 3, free: 1 } })
    const blocker = await hold(s.port, 'blocker')
    const answers = [
      ...Array.from({ length: 12 }, () => ask(s.port, 'free')),
      ...Array.from({ length: 12 }, () => ask(s.port, 'gold')),
    ]
    await waiting(s, 24)
    blocker.abort()
    await Promise.all(answers)
    expect(count(s.served.slice(1, 9))).toEqual({ gold: 6, free: 2 })
  })

  it('gives a tenant that returns its share at once', async () => {
    const s = await start(framework, {})
    await establish(s, 'a', 'b', 'late')
    const blocker = await hold(s.port, 'blocker')
    const answers: Promise<unknown>[] = []
    for (let i = 0; i < 3; i++) answers.push(ask(s.port, 'a'))
    const pause = hold(s.port, 'a')
    answers.push(pause)
    for (let i = 0; i < 6; i++) answers.push(ask(s.port, 'a'))
    for (let i = 0; i < 10; i++) answers.push(ask(s.port, 'b'))
    await waiting(s, 20)
    blocker.abort()
    const paused = await pause
    // a b a b a b, then a's fourth holds the slot while the late tenant arrives.
    expect(s.served.slice(1)).toEqual(['a', 'b', 'a', 'b', 'a', 'b', 'a'])
    const late = Array.from({ length: 4 }, () => ask(s.port, 'late'))
    await waiting(s, 17)
    paused.abort()
    await Promise.all([...answers, ...late])
    expect(count(s.served.slice(8, 14))).toEqual({ a: 2, b: 2, late: 2 })
  })

  it('serves critical before standard, and sheds sheddable before a standard request runs out of time', async () => {
    const s = await start(framework, { priority: byHeader }, { timeoutMs: 2_000 })
    const blocker = await hold(s.port, 'blocker')
    const shed = ask(s.port, 'batch', { 'x-priority': 'sheddable' })
    await waiting(s, 1)
    const standard = ask(s.port, 'user', { 'x-priority': 'standard' })
    await waiting(s, 2)
    const critical = ask(s.port, 'ops', { 'x-priority': 'critical' })
    await waiting(s, 3)
    const shedAnswer = await shed
    expect(shedAnswer.status).toBe(503)
    expect(shedAnswer.json().error.code).toBe('shed')
    expect(shedAnswer.headers['retry-after']).toBe('1')
    // The standard request is still waiting, within its time, when the sheddable one is turned away.
    expect(s.backends.queue().waiting).toBe(2)
    blocker.abort()
    expect((await critical).status).toBe(200)
    expect((await standard).status).toBe(200)
    expect(s.served.slice(1)).toEqual(['ops', 'user'])
  })

  it('lets a client cap its wait with the deadline header', async () => {
    const s = await start(framework, {}, { timeoutMs: 10_000 })
    const blocker = await hold(s.port, 'blocker')
    const short = await ask(s.port, 'a', { 'x-request-deadline-ms': '50' })
    expect(short.status).toBe(503)
    expect(short.json().error.code).toBe('queue_timeout')
    const bad = await ask(s.port, 'a', { 'x-request-deadline-ms': 'tomorrow' })
    expect(bad.status).toBe(400)
    expect(bad.json().error.code).toBe('invalid_deadline')
    expect(s.backends.queue().waiting).toBe(0)
    blocker.abort()
  })

  it('drops a client that goes away from the queue at once', async () => {
    const s = await start(framework, {})
    const blocker = await hold(s.port, 'blocker')
    const leaving = abortable(s.port, { body: chat({ user: 'gone' }), headers: { 'x-tenant-id': 'gone' } })
    await waiting(s, 1)
    leaving.abort()
    await waiting(s, 0)
    expect(s.backends.get('gpu')?.queued).toBe(0)
    const stays = ask(s.port, 'stays')
    await waiting(s, 1)
    blocker.abort()
    expect((await stays).status).toBe(200)
    expect(s.served.slice(1)).toEqual(['stays'])
  })

  it('keeps one tenant’s flood to its own cap', async () => {
    const s = await start(framework, { maxWaitingPerTenant: 2 }, { size: 10 })
    await establish(s, 'flood', 'calm')
    const blocker = await hold(s.port, 'blocker')
    const flood = [ask(s.port, 'flood'), ask(s.port, 'flood')]
    await waiting(s, 2)
    const over = await ask(s.port, 'flood')
    expect(over.status).toBe(503)
    expect(over.json().error.code).toBe('tenant_queue_full')
    const calm = ask(s.port, 'calm')
    await waiting(s, 3)
    const rows = s.backends
      .queue()
      .tenants.filter((t) => !t.newcomers)
      .map((t) => [t.tenant, t.waiting])
    expect(rows).toEqual([
      ['flood', 2],
      ['calm', 1],
    ])
    blocker.abort()
    expect((await calm).status).toBe(200)
    await Promise.all(flood)
  })
})
