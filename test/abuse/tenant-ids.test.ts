import { apiKeyKey, type BackendsHandle, type FairnessOptions } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup } from '../helpers/cleanup.js'
import { type Framework, startExpress, startFastify } from '../helpers/gateways.js'
import { chat, fake, type OpenStream, openStream, send } from '../helpers/http.js'
import { waitFor } from '../helpers/wait.js'

// Tenant ids cost a client nothing to make up. Through real sockets, both adapters: an honest client
// next to one with four times its workers, that names itself anew on every request, keeps its share.

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const PATH = '/v1/chat/completions'

interface Setup {
  port: number
  backends: BackendsHandle
  /** Who the backend served, in order (the `user` field of each body it admitted). */
  served: string[]
}

interface GatewayOptions {
  fairness?: FairnessOptions<never>
  keyGenerator?: (request: {
    headers: Record<string, string | string[] | undefined>
  }) => string | Promise<string>
  defaultLimits?: string
  queue?: { size?: number }
}

/** One backend with `slots` slots (the backend holds a request whose body says `hold` until cut). */
async function start(framework: Framework, options: GatewayOptions, slots = 2): Promise<Setup> {
  const served: string[] = []
  const backend = await fake(cleanup, {
    // Long enough (about 20 ms) that a client's next request is back before the backend is: the
    // share measured is the queue's, not how fast this one process turns requests around.
    timePerTokenMs: 2,
    answerTokens: (_random, body) => {
      served.push(String(body.user))
      return body.hold === true ? 1_000_000 : 10
    },
  })
  const all = {
    backends: [{ url: backend.url, id: 'gpu', maxConcurrency: slots }],
    fairness: {},
    queue: { size: 100 },
    ...options,
  }
  if (framework === 'Fastify') {
    const { app, port } = await startFastify(cleanup, all as never, (app) => {
      app.post(PATH, app.tollgate.forward())
    })
    return { port, backends: app.tollgate.backends, served }
  }
  const { gate, port } = await startExpress(cleanup, all as never, (app, gate) => {
    if (options.defaultLimits === undefined) app.post(PATH, gate.forward())
    else app.post(PATH, gate.limit(), gate.forward())
  })
  return { port, backends: gate.backends, served }
}

interface Worker {
  label: string
  headers: () => Record<string, string>
}

/** `n` workers labelled `label`, each sending its next request as soon as the last is answered. */
function workers(n: number, label: string, headers: () => Record<string, string>): Worker[] {
  return Array.from({ length: n }, () => ({ label, headers }))
}

/**
 * Runs closed-loop workers until the backend has served `total` requests; returns the share of
 * `label` among those served after the first `warmUp`, and the errors each label got (`code:
 * message`: a request pushed out of the queue and one turned away share the code).
 */
async function race(s: Setup, all: Worker[], label: string, total = 160, warmUp = 40) {
  let stop = false
  const errors: Record<string, string[]> = {}
  const loop = async (w: Worker) => {
    while (!stop) {
      const answer = await send(s.port, {
        path: PATH,
        body: chat({ user: w.label }),
        headers: w.headers(),
      })
      if (answer.status !== 200) {
        const { code, message } = answer.json().error
        const list = errors[w.label] ?? []
        list.push(`${code}: ${message}`)
        errors[w.label] = list
      }
    }
  }
  const loops = all.map(loop)
  await waitFor(() => s.served.length >= total, `${total} requests served`, 60_000)
  stop = true
  await Promise.all(loops)
  const measured = s.served.slice(warmUp, total)
  return { share: measured.filter((who) => who === label).length / measured.length, errors }
}

let minted = 0
const bearer = (key: string) => ({ authorization: `Bearer ${key}` })
const freshKey = () => bearer(`sk-minted-${minted++}`)

describe.each(['Fastify', 'Express'] as const)('%s: tenant ids a client makes up', (framework) => {
  it('are not the tenant by default: the client is who its address says it is', async () => {
    const s = await start(framework, { fairness: { weights: { gold: 3 } } }, 1)
    const hold: OpenStream = await openStream(s.port, {
      body: chat({ user: 'blocker', hold: true, stream: true }),
    })
    const asking = ['gold', 'silver', 'bronze'].map((tenant) =>
      send(s.port, { path: PATH, body: chat({ user: tenant }), headers: { 'x-tenant-id': tenant } }),
    )
    await waitFor(() => s.backends.queue().waiting === 3, '3 requests to wait')
    const rows = s.backends.queue().tenants.map((t) => [t.tenant, t.waiting])
    // Not yet served, so not yet a tenant of its own: one address, in the shared class.
    expect(rows).toEqual([['(new)', 3]])
    hold.abort()
    await Promise.all(asking)
    const tenants = s.backends.queue().tenants.map((t) => t.tenant)
    expect(tenants).toEqual(['127.0.0.1', '(new)'])
  })

  it('are not the tenant either when the route is limited: the key its limits counted is', async () => {
    // An async keyGenerator (a lookup of the customer, say): the queue takes the key the limits got.
    const keyGenerator = async (request: { headers: Record<string, string | string[] | undefined> }) =>
      `customer:${String(request.headers['x-customer'])}`
    const s = await start(framework, { keyGenerator, defaultLimits: '1000 per minute' }, 1)
    const hold: OpenStream = await openStream(s.port, {
      body: chat({ user: 'blocker', hold: true, stream: true }),
    })
    const asking = ['a', 'b'].map((customer) =>
      send(s.port, {
        path: PATH,
        body: chat({ user: customer }),
        headers: { 'x-customer': customer, 'x-tenant-id': 'gold' },
      }),
    )
    await waitFor(() => s.backends.queue().waiting === 2, '2 requests to wait')
    hold.abort()
    await Promise.all(asking)
    const tenants = s.backends.queue().tenants.map((t) => t.tenant)
    expect(tenants).toEqual(['customer:a', 'customer:b', '(new)'])
  })

  it('leave an honest client at least 40% against 4× its workers minting an API key per request', async () => {
    const s = await start(framework, { keyGenerator: apiKeyKey })
    const all = [...workers(6, 'honest', () => bearer('sk-honest')), ...workers(24, 'attacker', freshKey)]
    const { share, errors } = await race(s, all, 'honest')
    expect(share).toBeGreaterThanOrEqual(0.4)
    expect(errors.honest).toBeUndefined()
  })

  it('leave it half when the attacker keeps one key', async () => {
    const s = await start(framework, { keyGenerator: apiKeyKey })
    const all = [
      ...workers(6, 'honest', () => bearer('sk-honest')),
      ...workers(24, 'attacker', () => bearer('sk-attacker')),
    ]
    const { share } = await race(s, all, 'honest')
    expect(share).toBeGreaterThanOrEqual(0.45)
  })

  it('are turned away from a full queue before an established client is pushed out', async () => {
    const s = await start(framework, {
      fairness: { trustTenantHeader: true },
      queue: { size: 8 },
    })
    const all = [
      ...workers(6, 'honest', () => ({ 'x-tenant-id': 'honest' })),
      ...workers(24, 'attacker', () => ({ 'x-tenant-id': `minted-${minted++}` })),
    ]
    const { share, errors } = await race(s, all, 'honest')
    expect(share).toBeGreaterThanOrEqual(0.4)
    // Holding more places than all minted ids together, it may be turned away; never pushed out.
    expect((errors.honest ?? []).filter((e) => /took this place/.test(e))).toEqual([])
    expect(errors.attacker?.length).toBeGreaterThan(0)
    expect(errors.attacker?.every((e) => /^(tenant_)?queue_full:/.test(e))).toBe(true)
  })
})
