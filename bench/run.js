/**
 * Runs the benchmarks and writes their results.
 *
 *   node bench/run.js                      full run (about 12 minutes), writes bench/RESULTS.md
 *   node bench/run.js --quick              smoke run (under a minute), writes bench/.out/RESULTS.quick.md
 *   node bench/run.js --only rate-limit    one suite (rate-limit, forward, latency, balance; comma-separate)
 *   node bench/run.js --only forward,latency
 *                                          what forwarding costs: CPU beside its peers, latency added
 *                                          at 1,000 req/s (about 6 minutes)
 *   node bench/run.js --out FILE           write somewhere else
 *   node bench/run.js --profile            servers under test write V8 CPU profiles to bench/.out/profiles
 *   node bench/run.js --only rate-limit --rounds 12 --seconds 4   more and longer rate-limit rounds
 *   node bench/run.js --only balance --balancers least-latency,nginx
 *                                          only the balancers whose id contains one of these
 *
 * A suite not run keeps its section from the file being rewritten, so `--only` refreshes one table
 * without losing the others; so do the sections the scripts run on their own add (routing.js, kv-events.js,
 * fairness.js, tokens.js).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { runBalanceBench } from './balance.js'
import { runForwardBench } from './forward.js'
import { runLatencyBench } from './latency.js'
import { describeMachine } from './lib/machine.js'
import { table } from './lib/markdown.js'
import { pinningAvailable, pinSelf, setProfileDir, stopAll } from './lib/processes.js'
import { mergeSections, parseSections, renderSections } from './lib/results-sections.js'
import { missingTools } from './lib/tools.js'
import { runRateLimitBench } from './rate-limit.js'

const SUITES = /** @type {const} */ (['rate-limit', 'forward', 'latency', 'balance'])
/** @typedef {(typeof SUITES)[number]} SuiteName */
/**
 * @typedef {{ title: string, markdown: string, losses: string[], raw: unknown }} SuiteResult
 * @typedef {{ quick: boolean, log: (l: string) => void, runId: string, balancers?: string[], rounds?: number, seconds?: number }} SuiteOptions
 * @type {Record<SuiteName, (o: SuiteOptions) => Promise<SuiteResult>>}
 */
const RUNNERS = {
  'rate-limit': runRateLimitBench,
  forward: runForwardBench,
  latency: runLatencyBench,
  balance: runBalanceBench,
}

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' },
    balancers: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    profile: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
})
if (values.help) {
  console.log(
    readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('*/')[0]
      ?.replace(/^\/\*\*?|^ \* ?/gm, ''),
  )
  process.exit(0)
}
const quick = values.quick ?? false

/** `--rounds` / `--seconds` as a whole number above 0, or undefined when not given. */
function positiveInteger(/** @type {'rounds' | 'seconds'} */ name) {
  const text = values[name]
  if (text === undefined) return undefined
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) {
    console.error(`--${name} takes a whole number above 0; got ${JSON.stringify(text)}`)
    process.exit(2)
  }
  return n
}
/** @type {SuiteName[]} */
const selected = values.only
  ? values.only.split(',').map((s) => {
      const name = s.trim()
      if (!SUITES.includes(/** @type {SuiteName} */ (name))) {
        console.error(`--only takes ${SUITES.join(', ')} (comma-separated); got ${JSON.stringify(name)}`)
        process.exit(2)
      }
      return /** @type {SuiteName} */ (name)
    })
  : [...SUITES]

const missing = missingTools(selected)
if (missing) {
  console.error(missing.message)
  process.exit(2)
}

const here = dirname(fileURLToPath(import.meta.url))
const outFile = values.out ?? (quick ? `${here}/.out/RESULTS.quick.md` : `${here}/RESULTS.md`)
const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`
const started = Date.now()
const log = (/** @type {string} */ line) => {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6)
  console.log(`[${s}s] ${line}`)
}

if (values.profile) {
  mkdirSync(`${here}/.out/profiles`, { recursive: true })
  setProfileDir(`${here}/.out/profiles`)
}
const pinned = pinSelf()
const machine = describeMachine()
log(
  `${quick ? 'quick' : 'full'} run of ${selected.join(', ')}; ${machine.cpus} CPUs (${machine.cpuModel}), ` +
    `load ${machine.loadAverage}; pinning ${pinningAvailable() ? 'on' : 'OFF (fewer than 2 cores or no taskset)'}`,
)

/** @type {Partial<Record<SuiteName, string>>} */
const sections = {}
/** @type {Record<string, unknown>} */
const raw = {}
let failed = false
try {
  for (const name of selected) {
    const suiteStart = Date.now()
    try {
      const balancers = values.balancers?.split(',').filter(Boolean)
      const result = await RUNNERS[name]({
        quick,
        log,
        runId,
        balancers,
        rounds: positiveInteger('rounds'),
        seconds: positiveInteger('seconds'),
      })
      raw[name] = result.raw
      const seconds = ((Date.now() - suiteStart) / 1000).toFixed(0)
      const losses = result.losses.length
        ? `\n\n**Where tollgate loses**\n\n${result.losses.map((l) => `- ${l}`).join('\n')}`
        : ''
      sections[name] =
        `## ${result.title}\n\n_${quick ? 'Quick (smoke) run' : 'Full run'}, ${new Date().toISOString()}, ` +
        `${seconds} s._\n\n${result.markdown}${losses}`
    } catch (err) {
      failed = true
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err)
      log(`${name} failed: ${message}`)
      sections[name] =
        `## ${name}\n\nThis suite failed in the run of ${new Date().toISOString()}:\n\n\`\`\`\n${message}\n\`\`\``
    }
  }
} finally {
  await stopAll()
}

const previous = existsSync(outFile) ? parseSections(readFileSync(outFile, 'utf8')) : []
const header = `# tollgate benchmarks

Written by \`node bench/run.js${quick ? ' --quick' : ''}\`; see \`bench/README.md\` for what each suite does
and how to read it. The server under test runs pinned to core 0 (\`taskset -c 0\`); load generators,
origins and model backends run on core 1.${pinned ? '' : ' **Pinning was not available in this run.**'}

${table(
  ['', ''],
  [
    ['date', machine.date],
    ['machine', `${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB`],
    [
      'load average at start / end',
      `${machine.loadAverage} / ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    ],
    ['node', machine.node],
    ['nginx / haproxy / wrk', `${machine.nginx} / ${machine.haproxy} / ${machine.wrk}`],
    ['tollgate commit', machine.commit],
    [
      'packages',
      Object.entries(machine.packages)
        .map(([n, v]) => `${n} ${v}`)
        .join(', '),
    ],
  ],
  ['l', 'l'],
)}
`
const body = renderSections(mergeSections(previous, sections, SUITES))
mkdirSync(dirname(outFile), { recursive: true })
writeFileSync(outFile, `${header}\n${body}\n`)
mkdirSync(`${here}/.out`, { recursive: true })
writeFileSync(`${here}/.out/raw-${runId}.json`, JSON.stringify({ machine, quick, raw }, null, 2))
log(`wrote ${outFile} (raw figures in bench/.out/raw-${runId}.json)`)
process.exitCode = failed ? 1 : 0
