import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import tollgate from '@tollgate/fastify'
import Fastify, { type FastifyInstance } from 'fastify'
import { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { type ChildServer, freePort, hasRedisServer, IN_CI, load, spawnRedis, waitFor } from './support.js'

// A three-master Redis Cluster of private redis-server processes, and two gateway replicas each
// with its own ioredis Cluster client: one limit between them, because every key of one client
// carries the same {hash tag} and so lives in one slot on one master.

const run = promisify(execFile)
if (!hasRedisServer && !IN_CI) console.warn('redis-server is not on PATH: skipping the Redis Cluster test')
const describeCluster = hasRedisServer || IN_CI ? describe : describe.skip

describeCluster('two gateway replicas on a Redis Cluster', () => {
  const nodes: ChildServer[] = []
  const clients: Cluster[] = []
  const apps: FastifyInstance[] = []
  const loggers = [0, 1].map(() => ({ warn: vi.fn(), info: vi.fn() }))
  let dir = ''

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-cluster-'))
    const ports = await Promise.all([freePort(), freePort(), freePort()])
    for (const port of ports) {
      nodes.push(
        await spawnRedis(port, [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
        ]),
      )
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { timeout: 15_000 },
    )
    await waitFor(
      async () => {
        const { stdout } = await run('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'])
        return stdout.includes('cluster_state:ok')
      },
      10_000,
      'the cluster to be ready',
    )
    for (let i = 0; i < 2; i++) {
      const client = new Cluster(
        ports.map((port) => ({ host: '127.0.0.1', port })),
        { clusterRetryStrategy: () => 100 },
      )
      client.on('error', () => {})
      clients.push(client)
      await waitFor(() => client.status === 'ready', 10_000, 'the cluster client to connect')
      const app = Fastify()
      apps.push(app)
      await app.register(tollgate, {
        store: { redis: client },
        keyGenerator: (request) => String(request.headers['x-client']),
        defaultLimits: '10 per minute, 15 per hour',
        logger: loggers[i],
      })
      app.get('/limited', async () => ({ ok: true }))
      const moving = { limits: '6 per minute', limitStrategy: 'moving-window' } as const
      app.get('/moving', { config: { rateLimit: moving } }, async () => ({ ok: true }))
      // Per day: a sliding window counter's buckets are aligned to the epoch, and a test that
      // crossed a bucket's end could see the previous bucket's weight round one request down.
      const sliding = { limits: '6 per day', limitStrategy: 'sliding-window-counter' } as const
      app.get('/sliding', { config: { rateLimit: sliding } }, async () => ({ ok: true }))
      await app.ready()
    }
  }, 30_000)

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()))
    for (const client of clients) client.disconnect()
    await Promise.all(nodes.map((node) => node.kill()))
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('enforces one limit across both replicas, for clients spread over every master', async () => {
    const clientKeys = Array.from({ length: 12 }, (_, i) => `tenant-${i}`)
    for (const key of clientKeys) {
      const answers = await load(16, 4, (i) =>
        apps[i % 2]!.inject({ method: 'GET', url: '/limited', headers: { 'x-client': key } }),
      )
      // 10 per minute between the two replicas, not 10 each.
      expect(answers.filter((a) => a.statusCode === 200)).toHaveLength(10)
      expect(answers.filter((a) => a.statusCode === 429)).toHaveLength(6)
    }
    // The clients' counters really are spread over the cluster: more than one master holds some.
    const holders = await Promise.all(
      clients[0]!.nodes('master').map(async (node) => (await node.keys('tollgate:{tenant-*')).length),
    )
    expect(holders.filter((n) => n > 0).length).toBeGreaterThan(1)
    expect(holders.reduce((a, b) => a + b, 0)).toBe(clientKeys.length * 2)
  })

  it('keeps one limit for client keys with braces in them (a "}" would end the hash tag early)', async () => {
    for (const key of ['}user-1', 'a}b{c', '{}', '%7Duser-1']) {
      const answers = await load(14, 4, (i) =>
        apps[i % 2]!.inject({ method: 'GET', url: '/limited', headers: { 'x-client': key } }),
      )
      // Without escaping the script fails with CROSSSLOT: each replica falls back to its own
      // memory limiter (10 each, 14 in all here) and logs an outage on every request.
      expect(
        answers.filter((a) => a.statusCode === 200),
        key,
      ).toHaveLength(10)
      expect(
        answers.filter((a) => a.statusCode === 429),
        key,
      ).toHaveLength(4)
    }
    for (const logger of loggers) expect(logger.warn).not.toHaveBeenCalled()
  })

  it('counts moving windows and sliding window counters in each client slot, one limit for both replicas', async () => {
    for (const path of ['/moving', '/sliding']) {
      for (const key of ['strategy-a', 'strategy-b', 'strategy-c', 'x}y']) {
        const answers = await load(10, 4, (i) =>
          apps[i % 2]!.inject({ method: 'GET', url: path, headers: { 'x-client': key } }),
        )
        expect(answers.filter((a) => a.statusCode === 200).length, `${path} ${key}`).toBe(6)
        expect(answers.filter((a) => a.statusCode === 429).length, `${path} ${key}`).toBe(4)
      }
    }
    const kinds = await Promise.all(
      clients[0]!.nodes('master').map(async (node) => {
        const keys = await node.keys('tollgate:{strategy-*')
        return Promise.all(keys.map((key) => node.type(key)))
      }),
    )
    expect(kinds.flat().sort()).toEqual(['hash', 'hash', 'hash', 'list', 'list', 'list'])
    for (const logger of loggers) expect(logger.warn).not.toHaveBeenCalled()
  })
})
