import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Cleanup, fake } from '../helpers/http.js'
import { FRAMEWORKS, type Framework } from './gateways.js'
import { type ChildServer, chat, freePort, load, sleep, spawnRedis, waitFor } from './support.js'

// Gateway replicas in processes of their own sharing a private redis-server through
// `routingState`: replicas are killed with SIGKILL mid-request, Redis is killed and frozen under load.
const REPLICA = fileURLToPath(new URL('./routing-replica.js', import.meta.url))
const cleanup = new Cleanup()
afterEach(() => cleanup.run())

interface Replica {
  port: number
  child: ChildProcess
  /** Lines the replica logged (warnings and notices). */
  lines: string[]
  kill(): Promise<void>
}

async function spawnReplica(framework: Framework, options: Record<string, unknown>): Promise<Replica> {
  const child = spawn(process.execPath, [REPLICA, framework, JSON.stringify(options)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const lines: string[] = []
  let err = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk
  })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`the replica did not start: ${err}`)), 15_000)
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk
      let at = out.indexOf('\n')
      while (at !== -1) {
        const line = out.slice(0, at)
        out = out.slice(at + 1)
        const listening = /^listening (\d+)$/.exec(line)
        if (listening) {
          clearTimeout(timer)
          resolve(Number(listening[1]))
        } else lines.push(line)
        at = out.indexOf('\n')
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`the replica exited with ${code}: ${err}`))
    })
  })
  const replica = {
    port,
    child,
    lines,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      return exited
    },
  }
  cleanup.add(() => replica.kill(), null)
  return replica
}

let redisPort: number
let redisServer: ChildServer | undefined
let client: Redis
beforeAll(async () => {
  redisPort = await freePort()
  redisServer = await spawnRedis(redisPort)
  client = new Redis({ port: redisPort, host: '127.0.0.1', retryStrategy: () => 50, maxRetriesPerRequest: 0 })
  client.on('error', () => {})
})
afterAll(async () => {
  client?.disconnect()
  await redisServer?.kill()
})

/** This replica's requests in flight at `backend` as Redis holds them, live replicas only. */
async function countedInFlight(prefix: string, backend: string): Promise<number> {
  const base = `${prefix}{routing}:`
  const fields = await client.hgetall(`${base}b:${backend}`)
  const now = Date.now()
  let total = 0
  for (const [field, value] of Object.entries(fields)) {
    if (!field.startsWith('i:')) continue
    const expiry = await client.zscore(`${base}replicas`, field.slice(2))
    if (expiry !== null && Number(expiry) > now) total += Number(value)
  }
  return total
}

describe.each(FRAMEWORKS)('%s replicas in separate processes', (framework) => {
  it('frees the leases of a replica killed mid-request within the lease time, and never exceeds maxConcurrency', async () => {
    const backend = await fake(cleanup, { name: 'a', timePerTokenMs: 20 })
    const prefix = `tollgate-kill-${framework}:`
    const options = {
      backends: [{ id: 'a', url: backend.url, maxConcurrency: 2 }],
      strategy: 'least-connections',
      queue: { timeoutMs: 20_000 },
      routingState: { redisPort, prefix, leaseTtlMs: 1_000, heartbeatMs: 200 },
    }
    const [doomed, survivor] = await Promise.all([
      spawnReplica(framework, options),
      spawnReplica(framework, options),
    ])
    await waitFor(
      async () => (await client.zcard(`${prefix}{routing}:replicas`)) === 2,
      5_000,
      'replicas sharing',
    )
    // The doomed replica takes both places with long answers; the survivor's requests must wait.
    const cut = [0, 1].map(() => chat(doomed.port, true, { maxTokens: 10_000 }).catch(() => undefined))
    await waitFor(() => backend.stats.inFlight === 2, 5_000, 'two answers running')
    await waitFor(async () => (await countedInFlight(prefix, 'a')) === 2, 5_000, 'two leases in Redis')
    const waiting = [0, 1, 2].map(() => chat(survivor.port, false, { maxTokens: 3 }))
    await sleep(300)
    expect(backend.stats.maxConcurrent).toBe(2)

    await doomed.kill()
    await Promise.all(cut)
    // Killed, its leases are gone after leaseTtlMs and the survivor's requests get the places.
    const answers = await Promise.all(waiting)
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200])
    expect(backend.stats.maxConcurrent).toBe(2)
    // Nothing leaks: once done, nothing is counted in flight there.
    await waitFor(async () => (await countedInFlight(prefix, 'a')) === 0, 3_000, 'no lease left')
    const more = await load(8, 4, () => chat(survivor.port, false, { maxTokens: 3 }))
    expect(more.map((a) => a.status)).toEqual(more.map(() => 200))
    expect(backend.stats.maxConcurrent).toBe(2)
  })
})

describe('Redis killed and frozen under load', () => {
  it('answers every request, routes per replica meanwhile, logs each outage once, and shares again after', async () => {
    const backends = await Promise.all(['a', 'b'].map((name) => fake(cleanup, { name, timePerTokenMs: 2 })))
    const prefix = 'tollgate-outage:'
    const options = {
      backends: backends.map((b) => ({ id: b.name, url: b.url, maxConcurrency: 4 })),
      strategy: 'prefix-affinity',
      routingState: { redisPort, prefix, timeoutMs: 400, leaseTtlMs: 1_000, heartbeatMs: 200 },
    }
    const replicas = await Promise.all(FRAMEWORKS.map((framework) => spawnReplica(framework, options)))
    await waitFor(
      async () => (await client.zcard(`${prefix}{routing}:replicas`)) === 2,
      5_000,
      'replicas sharing',
    )
    const ask = (i: number) => chat(replicas[i % 2]!.port, false, { maxTokens: 3 })
    const before = await load(40, 6, ask)
    expect(before.every((a) => a.status === 200)).toBe(true)
    // Each outage is logged once when it starts and once when it ends, never per request. (A slow
    // answer on a loaded machine is an outage too, so each phase counts its own lines.)
    const logged = (what: string) => replicas.map((r) => r.lines.filter((l) => l.includes(what)).length)
    const down = (before: number[]) => logged('routing state unavailable').map((n, i) => n - before[i]!)
    const up = (before: number[]) => logged('routing state is back').map((n, i) => n - before[i]!)
    await waitFor(() => down([0, 0]).every((n, i) => n === up([0, 0])[i]), 5_000, 'both replicas sharing')
    let downBefore = logged('routing state unavailable')
    let upBefore = logged('routing state is back')

    // Killed in the middle of a load: nothing is lost.
    let killed: Promise<void> | undefined
    const during = await load(120, 6, (i) => {
      if (i === 30) killed = redisServer!.kill('SIGKILL')
      return ask(i)
    })
    await killed
    expect(during.filter((a) => a.status !== 200)).toEqual([])
    expect(down(downBefore)).toEqual([1, 1])

    // Back on the same port: the replicas find it again and say so, once each.
    redisServer = await spawnRedis(redisPort)
    await waitFor(() => up(upBefore).every((n) => n === 1), 10_000, 'both replicas to share again')
    await waitFor(
      async () => (await client.zcard(`${prefix}{routing}:replicas`).catch(() => 0)) === 2,
      5_000,
      'both replicas in Redis',
    )

    // Frozen (SIGSTOP) under load: calls time out, requests are routed per replica, none is lost.
    downBefore = logged('routing state unavailable')
    upBefore = logged('routing state is back')
    let frozen = false
    const stopped = await load(120, 6, (i) => {
      if (i === 30) {
        redisServer!.child.kill('SIGSTOP')
        frozen = true
      }
      return ask(i)
    })
    if (frozen) redisServer!.child.kill('SIGCONT')
    expect(stopped.filter((a) => a.status !== 200)).toEqual([])
    expect(down(downBefore)).toEqual([1, 1])
    await waitFor(
      () => up(upBefore).every((n) => n === 1),
      10_000,
      'both replicas to share again after the freeze',
    )
    // Nothing left counted once the load is over.
    await waitFor(
      async () => (await countedInFlight(prefix, 'a')) + (await countedInFlight(prefix, 'b')) === 0,
      3_000,
      'no lease left',
    )
  })
})
