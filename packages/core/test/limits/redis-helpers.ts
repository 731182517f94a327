import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createServer, Socket } from 'node:net'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import { replyIntegers } from '../../src/limits/redis-reply.js'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const IN_CI = process.env.CI === 'true'

export type NodeRedisClient = ReturnType<typeof createNodeRedis>
export type ClientKind = 'ioredis' | 'node-redis'
export const CLIENT_KINDS: readonly ClientKind[] = ['ioredis', 'node-redis']

/** A unique key prefix, so test files (and tests) can share one Redis without seeing each other's counters. */
export function uniquePrefix(): string {
  return `test:${randomUUID()}:`
}

async function answersPing(url: string): Promise<boolean> {
  const probe = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  probe.on('error', () => {})
  try {
    await probe.connect()
    return (await probe.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

function hasRedisServerBinary(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
}

const sharedRedisUp = await answersPing(REDIS_URL)
const redisServerBinary = hasRedisServerBinary()

if (!sharedRedisUp) {
  if (IN_CI) {
    console.error(`Redis at ${REDIS_URL} is not reachable and CI=true: the Redis tests will fail.`)
  } else {
    console.warn(`\n  ⚠ Redis at ${REDIS_URL} is not reachable: skipping the Redis tests (set REDIS_URL).\n`)
  }
}
if (!redisServerBinary) {
  if (IN_CI) {
    console.error('redis-server is not on PATH and CI=true: the private-server tests will fail.')
  } else {
    console.warn(
      '\n  ⚠ redis-server is not on PATH: skipping the tests that start and kill their own Redis.\n',
    )
  }
}

/**
 * Skip flags for `describe.skipIf`. In CI nothing is skipped, so a missing Redis fails the
 * suites loudly instead of turning them into a green no-op.
 */
export const skipWithoutRedis = !sharedRedisUp && !IN_CI
export const skipWithoutRedisServer = !redisServerBinary && !IN_CI

/** Call in `beforeAll`: in CI an unreachable Redis must fail the suite with a clear reason. */
export function requireSharedRedis(): void {
  if (!sharedRedisUp) throw new Error(`Redis at ${REDIS_URL} is not reachable (CI=true, so this fails)`)
}

export function requireRedisServer(): void {
  if (!redisServerBinary) throw new Error('redis-server is not on PATH (CI=true, so this fails)')
}

// Short reconnect delays so a restarted server is picked up within a test's patience.
const RECONNECT_MS = 50

export async function connectIoRedis(
  url = REDIS_URL,
  options: { lazyConnect?: boolean } = {},
): Promise<Redis> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 2_000,
    retryStrategy: () => RECONNECT_MS,
  })
  client.on('error', () => {})
  if (!options.lazyConnect) await client.connect()
  return client
}

function createNodeRedis(url: string) {
  return createClient({ url, socket: { reconnectStrategy: () => RECONNECT_MS, connectTimeout: 2_000 } })
}

export async function connectNodeRedis(url = REDIS_URL, options: { connect?: boolean } = {}) {
  const client = createNodeRedis(url)
  client.on('error', () => {})
  if (options.connect !== false) await client.connect()
  return client
}

/** Closes a client whether or not its server is still alive (QUIT would wait on a dead one). */
export function closeClient(client: Redis | NodeRedisClient): void {
  if (client instanceof Redis) {
    client.disconnect()
  } else if (client.isOpen) {
    client.destroy()
  }
}

/** Whether the client has (re)connected and would send a command right away. */
export function clientReady(client: Redis | NodeRedisClient): boolean {
  return client instanceof Redis ? client.status === 'ready' : client.isReady
}

export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      if (address === null || typeof address === 'string') throw new Error('no port')
      server.close(() => resolve(address.port))
    })
  })
}

function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket()
    let reply = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.on('data', (chunk) => {
      reply += chunk.toString()
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
  })
}

/**
 * A redis-server of the test's own, on a free port, that the test may kill, pause and restart
 * without disturbing the shared Redis other files use. No persistence, so a restart is empty.
 */
export class PrivateRedis {
  readonly port: number
  #process: ChildProcess | undefined

  private constructor(port: number) {
    this.port = port
  }

  static async start(): Promise<PrivateRedis> {
    const server = new PrivateRedis(await freePort())
    await server.restart()
    return server
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async restart(): Promise<void> {
    if (this.#process !== undefined) throw new Error('redis-server is already running')
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    )
    this.#process = child
    child.once('exit', () => {
      if (this.#process === child) this.#process = undefined
    })
    await waitFor(`redis-server on port ${this.port}`, () => pingOnce(this.port))
  }

  /** SIGKILL: the server vanishes without closing anything gracefully, like a crash. */
  async kill(): Promise<void> {
    const child = this.#process
    if (child === undefined) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }

  /** SIGSTOP: connections stay open but nothing answers, like a hung server. */
  pause(): void {
    this.#process?.kill('SIGSTOP')
  }

  resume(): void {
    this.#process?.kill('SIGCONT')
  }

  async stop(): Promise<void> {
    this.resume()
    await this.kill()
  }
}

/** The integers of a script's status reply (`replyIntegers`), in a fresh array. */
export function replyIntegerList(reply: unknown): number[] {
  const values: number[] = []
  values.length = replyIntegers(reply, values)
  return values
}
