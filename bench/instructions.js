/**
 * What each limiter adds to a request, counted in instructions rather than seconds: every variant
 * of the rate-limit suite (bench/rate-limit.js, the same servers) runs under valgrind's callgrind,
 * which counts the instructions the server process executes (every thread: JavaScript, V8, GC,
 * libuv), whatever else the machine is doing. On this shared VM two timed runs of the same
 * variant differ by more than a limiter costs; a memory variant's count repeats within about 1 %.
 *
 *   node bench/instructions.js                    every variant (about 15 minutes), prints the section
 *   node bench/instructions.js --write            also puts it into bench/RESULTS.md
 *   node bench/instructions.js --only fastify     variants whose id contains one of these (comma-separated)
 *   node bench/instructions.js --requests 4000 --warmup 4000 --parallel 2
 *
 * Per variant: start the server under callgrind with counting off, warm it up (`--warmup`
 * requests), count `--requests` requests, stop; all of them one at a time over one kept-alive
 * connection (so no count depends on how replies happen to batch, and the code V8 optimised
 * during the warm-up is the code that runs under the count). Instructions are not time: a cache miss or a system call
 * costs nothing here, and the kernel's work is not counted; the timed suite stays the measure of
 * time, this one says what the code does.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { sendRequests } from './lib/fixed-requests.js'
import { num, table, times } from './lib/markdown.js'
import { mergeSections, parseSections, renderSections } from './lib/results-sections.js'
import { onPath } from './lib/tools.js'
import { deleteKeys, GROUPS, redisAvailable } from './rate-limit.js'

const { values } = parseArgs({
  options: {
    write: { type: 'boolean', default: false },
    only: { type: 'string' },
    requests: { type: 'string', default: '20000' },
    warmup: { type: 'string', default: '20000' },
    parallel: { type: 'string', default: '2' },
  },
})
const requests = Number(values.requests)
const warmup = Number(values.warmup)
const parallel = Number(values.parallel)
for (const [name, n] of Object.entries({ requests, warmup, parallel })) {
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

const serverScript = fileURLToPath(new URL('./servers/rate-limit-server.js', import.meta.url))
const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url))
const runId = `tgir${Date.now().toString(36)}`
const workDir = mkdtempSync(join(tmpdir(), 'tollgate-instructions-'))

/** Instructions the server executed while answering `requests` requests, per request. */
async function countVariant(/** @type {string} */ id) {
  const server = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      `--callgrind-out-file=${join(workDir, `${id}.%p`)}`,
      process.execPath,
      serverScript,
      id,
      `${runId}:${id}:`,
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
      const timer = setTimeout(() => reject(new Error(`${id} did not start: ${stderr.slice(-500)}`)), 120_000)
      const check = () => {
        const match = /"port":(\d+)/.exec(stdout)
        if (match) {
          clearTimeout(timer)
          resolve(Number(match[1]))
        }
      }
      server.stdout.on('data', check)
      server.once('exit', () => reject(new Error(`${id} exited: ${stderr.slice(-500)}`)))
    })
    const url = `http://127.0.0.1:${port}/limited`
    // Warm-up and count on the same connection: a new socket, or a change from several at a
    // time to one, sends V8 back to optimising the code it serves them with, and that compiling
    // (on another thread, but counted) was half of what a request cost under the count.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      await sendRequests({ url, count: warmup, connections: 1, agent })
      execFileSync('callgrind_control', ['-i', 'on', String(server.pid)], { stdio: 'ignore' })
      await sendRequests({ url, count: requests, connections: 1, agent })
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

const only = values.only?.split(',').filter(Boolean)
const withRedis = await redisAvailable()
const groups = GROUPS.map((g) => {
  const kept = (/** @type {string} */ id) =>
    (withRedis || !id.endsWith('-redis')) &&
    (only === undefined || id === g.bare || only.some((o) => id.includes(o)))
  return {
    ...g,
    variants: g.variants.filter((v) => kept(v.id)),
    comparisons: g.comparisons.filter((c) => kept(c.a) && kept(c.b)),
  }
}).filter((g) => g.variants.length > 1)

/** @type {Map<string, number>} */
const counts = new Map()
const queue = groups.flatMap((g) => g.variants.map((v) => v.id))
const started = Date.now()
try {
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        const perRequest = await countVariant(id)
        counts.set(id, perRequest)
        console.error(
          `[${((Date.now() - started) / 1000).toFixed(0)} s] ${id}: ${num(perRequest)} instructions/request`,
        )
      }
    }),
  )
} finally {
  rmSync(workDir, { recursive: true, force: true })
  await deleteKeys(`${runId}:*`)
}

const sections = groups.map((group) => {
  const bare = counts.get(group.bare) ?? Number.NaN
  const label = (/** @type {string} */ id) => group.variants.find((v) => v.id === id)?.label ?? id
  const rows = group.variants.map((v) => {
    const count = counts.get(v.id) ?? Number.NaN
    return [v.label, num(count), v.id === group.bare ? '–' : num(count - bare)]
  })
  const comparisons = group.comparisons.map((c) => {
    const a = (counts.get(c.a) ?? Number.NaN) - bare
    const b = (counts.get(c.b) ?? Number.NaN) - bare
    return [label(c.a), label(c.b) + (c.note ? ` (${c.note})` : ''), times(a / b)]
  })
  return (
    `### ${group.name}\n\n` +
    table(['variant', 'instructions/request', 'added over bare'], rows) +
    '\n\n' +
    table(['tollgate variant', 'compared with', 'added-instructions ratio'], comparisons, ['l', 'l', 'r'])
  )
})
let commit = 'unknown'
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
} catch {}
const section =
  '## Rate-limit work per request, in instructions\n\n' +
  `${new Date().toISOString().slice(0, 10)}, commit ${commit}, node ${process.version}, ` +
  `${execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim()}, ${((Date.now() - started) / 60_000).toFixed(0)} min. ` +
  `\`node bench/instructions.js\`: each server of the rate-limit suite under valgrind's callgrind; ${num(warmup)} ` +
  `requests to warm up uncounted, then ${num(requests)} counted, one at a time over one connection. Instructions executed by the ` +
  'server process (all threads) per request; "added over bare" is what the limiter adds to the bare ' +
  'framework. Kernel time, cache misses and Redis itself are not in these figures (see the timed suite).' +
  `${withRedis ? '' : '\n\n**Redis did not answer at `REDIS_URL`: the Redis variants were not run.**'}\n\n` +
  sections.join('\n\n')
console.log(section)
if (values.write) {
  const current = readFileSync(RESULTS, 'utf8')
  const head = current.split('<!-- suite:')[0] ?? ''
  const merged = mergeSections(parseSections(current), { instructions: section }, ['instructions'])
  writeFileSync(RESULTS, `${head}${renderSections(merged)}\n`)
}
