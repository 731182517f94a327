import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { type Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { type AddressInfo, createServer, Socket } from 'node:net'
import { fileURLToPath } from 'node:url'

const FAKE_SERVER = fileURLToPath(new URL('../../examples/fake-model-server.js', import.meta.url))
export const IN_CI = process.env.CI === 'true'

/** A port that was free a moment ago (for processes that must come back on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it holds; throws after `timeoutMs` so a broken test fails instead of hanging. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const until = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

export interface ChildServer {
  readonly port: number
  readonly url: string
  readonly child: ChildProcess
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>
  kill(signal?: NodeJS.Signals): Promise<void>
}

function childExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

/** A fake model server as a child process (`examples/fake-model-server.js` CLI), ready to take requests. */
export async function spawnFakeBackend(
  port: number,
  name: string,
  args: string[] = [],
): Promise<ChildServer> {
  const child = spawn(process.execPath, [FAKE_SERVER, '--port', String(port), '--name', name, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = childExit(child)
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    let err = ''
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), 10_000)
    child.stderr?.on('data', (chunk: Buffer) => {
      err += chunk
    })
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk
      const line = out.split('\n')[0]
      if (out.includes('\n') && line) {
        clearTimeout(timer)
        resolve(line.trim())
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code} before listening: ${err}`))
    })
  })
  return {
    port,
    url,
    child,
    exited,
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}

export const hasRedisServer = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0

/** Answers PING within a short time. */
export function redisAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket()
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')))
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
  })
}

/** A private, memory-only `redis-server` on `port`, ready to answer. */
export async function spawnRedis(port: number, extra: string[] = []): Promise<ChildServer> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra],
    { stdio: 'ignore' },
  )
  const exited = childExit(child)
  await waitFor(() => redisAnswers(port), 10_000, `redis-server on port ${port}`)
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    child,
    exited,
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}

export interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: string
  /** The response ended without its body completing (the connection was cut). */
  aborted: boolean
}

/**
 * One request on a fresh connection (no agent, so nothing lingers after the test). Resolves
 * with whatever arrived, also when the response is cut; rejects only when no response started.
 */
export function send(
  port: number,
  options: {
    method?: string
    path: string
    headers?: Record<string, string>
    body?: string | Buffer
    /** Default: none, a connection of its own that closes with the response. */
    agent?: Agent
  },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path,
        headers: options.headers,
        agent: options.agent ?? false,
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          body += chunk
        })
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, aborted: false }),
        )
        res.on('error', () => {})
        res.on('close', () => {
          if (!res.complete)
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, aborted: true })
        })
      },
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

/** A chat completion through the gateway; `stream` asks for server-sent events, `maxTokens` caps the answer. */
export function chat(
  port: number,
  stream = false,
  options: { maxTokens?: number; headers?: Record<string, string>; agent?: Agent } = {},
): Promise<Answer> {
  return send(port, {
    agent: options.agent,
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', ...options.headers },
    body: JSON.stringify({
      model: 'fake-model',
      stream,
      max_tokens: options.maxTokens,
      messages: [{ role: 'user', content: 'hi' }],
    }),
  })
}

/** Runs `total` calls of `one`, `concurrency` at a time, and returns every result in order. */
export async function load<T>(
  total: number,
  concurrency: number,
  one: (i: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(total)
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++
        results[i] = await one(i)
      }
    }),
  )
  return results
}
