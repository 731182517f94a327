/**
 * What each forwarding gateway leaves to the garbage collector, counted rather than timed: how
 * many scavenges and full collections a fixed number of requests causes, how long they paused,
 * and how many bytes scavenges moved to the old generation (objects that outlive a scavenge are
 * copied, then promoted; that copying is the pause). The bytes repeat from run to run on a busy
 * machine; the pause times are timings and move with the load.
 *
 *   node bench/gc.js                         every gateway, small JSON and SSE (about 4 minutes)
 *   node bench/gc.js --only express          gateways whose id contains one of these (comma-separated)
 *   node bench/gc.js --requests 10000 --sse-requests 2000
 *   node bench/gc.js --allocations           also bytes allocated per request (a second, sampled pass)
 *   node bench/gc.js --write                 also puts the section into bench/RESULTS.md
 *
 * Small JSON answers go one at a time over one kept-alive connection (so no count depends on how
 * requests happen to overlap); SSE streams (16 events 2 ms apart) eight at a time.
 */
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { num, table } from './lib/markdown.js'
import { mergeSections, parseSections, renderSections } from './lib/results-sections.js'

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    requests: { type: 'string', default: '10000' },
    'sse-requests': { type: 'string', default: '2000' },
    allocations: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
  },
})
const here = (/** @type {string} */ path) => fileURLToPath(new URL(path, import.meta.url))
const GATEWAYS = [
  { id: 'tollgate-fastify', label: 'tollgate forward (Fastify)' },
  { id: 'tollgate-express', label: 'tollgate forward (Express, `expressServer(app)`)' },
  { id: 'tollgate-express-listen', label: 'tollgate forward (Express, `app.listen()`)' },
  { id: 'http-proxy-middleware', label: 'http-proxy-middleware (Express, `app.listen()`)' },
  { id: 'reply-from', label: '@fastify/reply-from' },
].filter((g) => !values.only || values.only.split(',').some((part) => g.id.includes(part)))
const WORKLOADS = [
  {
    id: 'json',
    title: 'Small JSON answer, one at a time',
    stream: false,
    requests: Number(values.requests),
    connections: 1,
  },
  {
    id: 'sse',
    title: 'Streamed answer (SSE, 16 events 2 ms apart), eight at a time',
    stream: true,
    requests: Number(values['sse-requests']),
    connections: 8,
  },
]
const WARMUP = 3000

/** @param {string[]} args */
async function start(args) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  /** @type {Array<(line: string) => void>} */
  const waiting = []
  createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stdout) }).on(
    'line',
    (line) => {
      waiting.shift()?.(line)
    },
  )
  const nextLine = () => new Promise((resolve) => waiting.push(resolve))
  /** @type {{ port?: number, skip?: string }} */
  const ready = JSON.parse(/** @type {string} */ (await nextLine()))
  return {
    port: ready.port,
    /** Ends the span the preload counts; resolves to its figures. */
    async span() {
      const line = nextLine()
      child.kill('SIGUSR1')
      return JSON.parse(/** @type {string} */ (await line)).gc
    },
    async stop() {
      child.kill('SIGTERM')
      await once(child, 'exit')
    },
  }
}

/** @param {number} port @param {(typeof WORKLOADS)[number]} w @param {number} count */
async function send(port, w, count) {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: w.connections })
  const body = JSON.stringify({
    model: 'fake-model',
    ...(w.stream ? { stream: true } : {}),
    messages: [{ role: 'user', content: 'Say something.' }],
  })
  let sent = 0
  const one = async () => {
    while (sent < count) {
      sent++
      const res = await pool.request({
        path: '/v1/chat/completions',
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      })
      await res.body.dump()
      if (res.statusCode !== 200) throw new Error(`answered ${res.statusCode}`)
    }
  }
  try {
    await Promise.all(Array.from({ length: w.connections }, one))
  } finally {
    await pool.close()
  }
}

const origin = await start([here('./servers/origin.js')])
const originUrl = `http://127.0.0.1:${origin.port}`
const preload = pathToFileURL(here('./lib/gc-preload.js')).href
/** @type {string[]} */
const sections = []
try {
  for (const w of WORKLOADS) {
    const rows = []
    for (const g of GATEWAYS) {
      const passes = values.allocations ? [false, true] : [false]
      /** @type {any} */
      let counted
      /** @type {number | null} */
      let allocated = null
      for (const sampling of passes) {
        const gateway = await start([
          '--import',
          sampling ? `${preload}?allocations` : preload,
          here('./servers/forward-server.js'),
          g.id,
          originUrl,
        ])
        try {
          if (gateway.port === undefined) throw new Error(`${g.id} did not start`)
          await send(gateway.port, w, Math.min(WARMUP, w.requests))
          await gateway.span()
          await send(gateway.port, w, w.requests)
          const figures = await gateway.span()
          if (sampling) allocated = figures.allocated
          else counted = figures
        } finally {
          await gateway.stop()
        }
      }
      const per10k = 10_000 / w.requests
      rows.push([
        g.label,
        num(counted.scavenges * per10k),
        num(counted.scavengeMs * per10k),
        num(counted.markCompacts * per10k),
        num(counted.markCompactMs * per10k),
        num(counted.maxPauseMs),
        num((counted.promoted * per10k) / 1e6),
        ...(values.allocations ? [allocated === null ? '–' : num(allocated / w.requests / 1024)] : []),
      ])
      console.error(`gc: ${w.id} ${g.id} done`)
    }
    sections.push(
      `### ${w.title}\n\n${table(
        [
          'path',
          'scavenges / 10k',
          'scavenge ms / 10k',
          'full GCs / 10k',
          'full GC ms / 10k',
          'longest pause ms',
          'promoted MB / 10k',
          ...(values.allocations ? ['allocated KB / request'] : []),
        ],
        rows,
      )}`,
    )
  }
} finally {
  await origin.stop()
}
let commit = 'unknown'
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
} catch {}
const section =
  '## Garbage collection per forwarded request\n\n' +
  `${new Date().toISOString().slice(0, 10)}, commit ${commit}, node ${process.version}, load ` +
  `${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} at the end. Per 10,000 requests after up to ${WARMUP} warm-up requests; ` +
  `${values.requests} small JSON and ${values['sse-requests']} SSE requests measured (\`node bench/gc.js\`). ` +
  '"Promoted" is what scavenges moved to the old generation, which repeats from run to run whatever the ' +
  'load; scavenge and full-collection milliseconds and the longest pause are timings and move with it.\n\n' +
  sections.join('\n\n')
console.log(section)
if (values.write) {
  const results = here('./RESULTS.md')
  const current = readFileSync(results, 'utf8')
  const head = current.split('<!-- suite:')[0] ?? ''
  const merged = mergeSections(parseSections(current), { gc: section }, ['gc'])
  writeFileSync(results, `${head}${renderSections(merged)}\n`)
}
