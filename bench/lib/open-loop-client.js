/**
 * Open-loop client: sends chat completions (streamed unless a `body` says otherwise) at Poisson
 * arrival times, whether or not earlier ones have been answered, and times each at the client from its *scheduled*
 * start (so a late send counts against the system, not for it):
 * time to first token = first body bytes, end to end = the stream's end.
 *
 * Meant to run on the load core, in a process that does nothing else meanwhile.
 */
import { performance } from 'node:perf_hooks'
import { Agent, request } from 'undici'
import { paretoTokens } from '../../examples/fake-model-server.js'
import { requestDeadline } from './deadline.js'
import { poissonSchedule, seededRandom } from './poisson.js'

/**
 * @typedef {{
 *   url: string, ratePerSecond: number, durationMs: number, seed: number, timeoutMs: number,
 *   sessions?: number, sessionHeader?: string, events?: Array<{ atMs: number, name: string }>,
 *   tokens?: { min: number, alpha: number, max: number }, body?: string, stream?: boolean,
 * }} ClientOptions `body`: one fixed request body instead of the generated one; with `stream: false`
 *   the answer is plain JSON, and a 200 without `[DONE]` is not an error. `tokens`: each request's
 *   answer length, drawn here and sent as `max_tokens`
 *   (to backends whose own length is larger), so that every balancer gets the very same work in the
 *   very same order, whichever backend ends up generating each answer.
 * @typedef {{ ttftMs: number, e2eMs: number, backend: string | null, error: string | null }} Outcome
 */

/**
 * @param {ClientOptions} options
 * @param {(name: string) => void} [onEvent] called at each `events` time, for fault injection in step
 *   with the arrivals
 */
export async function runOpenLoop(options, onEvent) {
  const arrivals = poissonSchedule(options)
  const pickSession = seededRandom(options.seed ^ 0x5bd1e995)
  const sessions = options.sessions ?? 200
  const sessionHeader = options.sessionHeader ?? 'x-session-id'
  const dispatcher = new Agent({
    keepAliveTimeout: 30_000,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connect: { timeout: 5_000 },
  })
  const t = options.tokens
  const drawLength = t ? paretoTokens(t.min, t.alpha, t.max) : null
  const lengthRandom = seededRandom(options.seed ^ 0x27d4eb2d)
  const streamed = options.stream ?? true
  const fixedBody = options.body
  const bodyOf = (/** @type {number | null} */ maxTokens) =>
    fixedBody ??
    JSON.stringify({
      model: 'fake-model',
      stream: true,
      ...(maxTokens === null ? {} : { max_tokens: maxTokens }),
      messages: [{ role: 'user', content: 'Tell me something about load balancing.' }],
    })
  /** @type {Promise<Outcome>[]} */
  const pending = []
  let maxLagMs = 0
  const start = performance.now()

  /** @param {number} scheduledAt ms since start @param {string} session @param {string} body */
  async function one(scheduledAt, session, body) {
    const t0 = start + scheduledAt
    /** @type {Outcome} */
    const outcome = { ttftMs: Number.NaN, e2eMs: Number.NaN, backend: null, error: null }
    const deadline = requestDeadline(options.timeoutMs)
    try {
      const res = await request(options.url, {
        method: 'POST',
        dispatcher,
        body,
        headers: { 'content-type': 'application/json', [sessionHeader]: session },
        signal: deadline.signal,
      })
      const backend = res.headers['x-backend']
      outcome.backend = typeof backend === 'string' ? backend : null
      let tail = ''
      let first = true
      for await (const chunk of res.body) {
        if (first) {
          outcome.ttftMs = performance.now() - t0
          first = false
        }
        tail = (tail + chunk.toString('latin1')).slice(-64)
        if (tail.includes('event: error')) outcome.error = 'stream-error'
      }
      outcome.e2eMs = performance.now() - t0
      if (res.statusCode !== 200) outcome.error = `http-${res.statusCode}`
      else if (streamed && !outcome.error && !tail.includes('[DONE]')) outcome.error = 'incomplete'
    } catch (err) {
      const e = /** @type {{ code?: string, name?: string }} */ (err)
      outcome.error = e.name === 'TimeoutError' ? 'timeout' : (e.code ?? e.name ?? 'error')
      outcome.e2eMs = performance.now() - t0
    } finally {
      deadline.clear()
    }
    return outcome
  }

  const events = [...(options.events ?? [])].sort((a, b) => a.atMs - b.atMs)
  let next = 0
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now() - start
      while (events.length && /** @type {{ atMs: number }} */ (events[0]).atMs <= now) {
        onEvent?.(/** @type {{ name: string }} */ (events.shift()).name)
      }
      while (next < arrivals.length && /** @type {number} */ (arrivals[next]) <= now) {
        const at = /** @type {number} */ (arrivals[next++])
        maxLagMs = Math.max(maxLagMs, now - at)
        const session = `s${Math.floor(pickSession() * sessions)}`
        pending.push(one(at, session, bodyOf(drawLength ? drawLength(lengthRandom) : null)))
      }
      if (next >= arrivals.length && events.length === 0) return resolve(undefined)
      const upcoming = Math.min(
        arrivals[next] ?? Number.POSITIVE_INFINITY,
        events[0]?.atMs ?? Number.POSITIVE_INFINITY,
      )
      setTimeout(tick, Math.max(0, upcoming - (performance.now() - start)))
    }
    tick()
  })
  const outcomes = await Promise.all(pending)
  const elapsedMs = performance.now() - start
  await dispatcher.close().catch(() => {})
  return { arrivals: arrivals.length, durationMs: options.durationMs, elapsedMs, maxLagMs, outcomes }
}
