/**
 * What `routingState: { redis }` adds to a prefix-affinity request on the gateway itself, counted
 * in instructions (valgrind's callgrind, as bench/instructions.js counts the limiters): one Fastify
 * gateway (bench/replica-gateway.js) in front of three fake backends that answer at once, with
 * and without the shared state, requests one at a time over one kept-alive connection. Redis's
 * own work is not counted (another process); the gateway's side of every call is: building the
 * arguments, the client writing the command and parsing the reply, the promises around it.
 *
 *   node bench/routing-state-instructions.js                       both variants, prints a table
 *   node bench/routing-state-instructions.js --requests 2000 --warmup 3000
 *   node bench/routing-state-instructions.js --keep DIR            keeps callgrind's files there (callgrind_annotate)
 *   REDIS_URL=redis://127.0.0.1:6379 (default) names the Redis the shared variant uses.
 *
 * The prompts: 32 conversations of 4 to 12 blocks (256 characters each), each request one of
 * them, so every shared request reads the index for 3 candidates and records its blocks.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { num, table } from './lib/markdown.js'
import { onPath } from './lib/tools.js'

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '3000' },
    keep: { type: 'string' },
  },
})
const requests = Number(values.requests)
const warmup = Number(values.warmup)
for (const [name, n] of Object.entries({ requests, warmup })) {
  if (!Number.isSafeInteger(n) || n < 1) {
    console.error(`--${name} takes a whole number above 0`)
    process.exit(2)
  }
}
for (const tool of ['valgrind', 'callgrind_control']) {
  if (!onPath(tool)) {
    console.error(`${tool} is missing: apt-get install -y valgrind`)
    process.exit(2)
  }
}
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const gatewayScript = fileURLToPath(new URL('./replica-gateway.js', import.meta.url))
const runId = `tgrsi${Date.now().toString(36)}:`
const workDir = values.keep ?? mkdtempSync(join(tmpdir(), 'tollgate-rs-instructions-'))

const REPLY = JSON.stringify({
  id: 'x',
  object: 'chat.completion',
  model: 'm',
  choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 },
})
/** Three backends that answer every request at once: the gateway's work is all there is to count. */
const backends = await Promise.all(
  [0, 1, 2].map(
    () =>
      new Promise((resolve) => {
        const server = http.createServer((req, res) => {
          req.resume()
          req.on('end', () => {
            res.writeHead(200, {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(REPLY),
            })
            res.end(REPLY)
          })
        })
        server.keepAliveTimeout = 60_000
        server.listen(0, '127.0.0.1', () => resolve(server))
      }),
  ),
)
const urls = backends.map(
  (s) => `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (s.address()).port}`,
)

const bodies = Array.from({ length: 32 }, (_, c) => {
  const system = `conversation ${c}: `.padEnd(256 * (4 + (c % 9)), `${c} lorem ipsum dolor sit amet `)
  return JSON.stringify({ model: 'm', messages: [{ role: 'user', content: system }] })
})

/** Sends `count` requests one at a time over `agent`'s one socket; rejects on any status but 200. */
async function send(port, agent, count, offset) {
  for (let i = 0; i < count; i++) {
    const body = bodies[(offset + i) % bodies.length]
    await new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/chat/completions',
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume()
          res.on('end', () =>
            res.statusCode === 200 ? resolve(undefined) : reject(new Error(`status ${res.statusCode}`)),
          )
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  }
}

async function count(/** @type {string} */ id, /** @type {boolean} */ shared) {
  const options = {
    backends: urls.map((url, i) => ({ url, id: `b${i}` })),
    strategy: 'prefix-affinity',
    ...(shared ? { routingState: { url: redisUrl, prefix: `${runId}${id}:` } } : {}),
  }
  const server = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      `--callgrind-out-file=${join(workDir, `${id}.%p`)}`,
      process.execPath,
      gatewayScript,
      JSON.stringify(options),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  server.stdout.on('data', (d) => {
    stdout += d
  })
  server.stderr.on('data', (d) => {
    stderr += d
  })
  const exited = new Promise((resolve) => server.once('exit', resolve))
  try {
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${id} did not start: ${stderr.slice(-500)}`)), 180_000)
      server.stdout.on('data', () => {
        const match = /"port":(\d+)/.exec(stdout)
        if (match) {
          clearTimeout(timer)
          resolve(Number(match[1]))
        }
      })
      server.once('exit', () => reject(new Error(`${id} exited: ${stderr.slice(-500)}`)))
    })
    // One socket for warm-up and count: V8 optimises the code that serves this connection.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      await send(port, agent, warmup, 0)
      execFileSync('callgrind_control', ['-i', 'on', String(server.pid)], { stdio: 'ignore' })
      await send(port, agent, requests, warmup)
      execFileSync('callgrind_control', ['-i', 'off', String(server.pid)], { stdio: 'ignore' })
    } finally {
      agent.destroy()
    }
  } finally {
    server.kill('SIGTERM')
    await exited
  }
  const collected = /Collected\s*:\s*([\d,]+)/.exec(stderr)?.[1]
  if (collected === undefined) throw new Error(`${id}: callgrind reported no count: ${stderr.slice(-500)}`)
  return Number(collected.replaceAll(',', '')) / requests
}

const counts = {}
try {
  for (const [id, shared] of [
    ['alone', false],
    ['shared', true],
  ]) {
    counts[id] = await count(id, shared)
    console.error(`${id}: ${num(counts[id])} instructions/request`)
  }
} finally {
  if (values.keep === undefined) rmSync(workDir, { recursive: true, force: true })
  for (const s of backends) s.close()
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${runId}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await redis.del(...keys)
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}
console.log(
  table(
    ['gateway', 'instructions/request', 'added by routingState'],
    [
      ['prefix-affinity, 3 backends', num(counts.alone), '–'],
      ['… with routingState (Redis)', num(counts.shared), num(counts.shared - counts.alone)],
    ],
  ),
)
console.log(
  `\n${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${num(warmup)} warm-up + ${num(requests)} counted requests, one at a time over one connection`,
)
