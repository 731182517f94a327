/**
 * Who a tenant is, measured for `bench/fairness.js`: an honest client with 6 closed-loop workers
 * beside an attacker with 24 (4×), on one backend with two slots, while the attacker names itself
 * once, anew on every request, or from a pool of ids it reuses. The tenant is the client's API key
 * (`keyGenerator: apiKeyKey`), the case where a client can make ids up: a key the app does not
 * check costs nothing.
 */
import { performance } from 'node:perf_hooks'
import { apiKeyKey } from '@tollgate/core'
import tollgate from '@tollgate/fastify'
import Fastify from 'fastify'
import { Agent, request } from 'undici'
import { startFakeModelServer } from '../../examples/fake-model-server.js'

const HONEST_WORKERS = 6
const ATTACKER_WORKERS = 24

/**
 * A gateway over one fake backend with two slots; each answer about 60 ms (20 ms to the first token,
 * 4 tokens at 10 ms). `served` lists, in admission order, the `user` of each request the backend took
 * and when (ms since start).
 * @param {number} queueSize
 */
async function startStack(queueSize) {
  /** @type {Array<{ who: string, at: number }>} */
  const served = []
  const start = performance.now()
  const fake = await startFakeModelServer({
    timeToFirstTokenMs: 20,
    timePerTokenMs: 10,
    answerTokens: (/** @type {unknown} */ _random, /** @type {Record<string, unknown>} */ body) => {
      served.push({ who: String(body.user), at: performance.now() - start })
      return 4
    },
  })
  const app = Fastify()
  await app.register(tollgate, {
    backends: [{ url: fake.url, id: 'gpu', maxConcurrency: 2 }],
    keyGenerator: apiKeyKey,
    queue: { size: queueSize, timeoutMs: 30_000 },
    fairness: {},
  })
  app.post('/v1/chat/completions', app.tollgate.forward())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}/v1/chat/completions`,
    served,
    close: async () => {
      await app.close()
      await fake.close()
    },
  }
}

/**
 * @typedef {{ name: string, queueSize: number, attackerKey: (n: number) => string }} Attack
 * @typedef {{ name: string, queueSize: number, honestShare: number, served: number,
 *   honestTurnedAway: number, honestPushedOut: number, attackerTurnedAway: number }} AttackFigures
 */

/**
 * Runs one attack for `durationMs`; shares are of the requests the backend admitted after `warmUpMs`.
 * @param {Attack} attack @param {number} durationMs @param {number} warmUpMs
 * @returns {Promise<AttackFigures>}
 */
async function runAttack(attack, durationMs, warmUpMs) {
  const stack = await startStack(attack.queueSize)
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 64 })
  const end = performance.now() + durationMs
  const errors = { honestTurnedAway: 0, honestPushedOut: 0, attackerTurnedAway: 0 }
  let n = 0
  const worker = async (/** @type {'honest' | 'attacker'} */ who) => {
    while (performance.now() < end) {
      const key = who === 'honest' ? 'sk-honest' : attack.attackerKey(n++)
      const res = await request(stack.url, {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'fake-model', user: who, messages: [{ role: 'user', content: 'hi' }] }),
      })
      const text = await res.body.text()
      if (res.statusCode === 200) continue
      const pushedOut = /took this place/.test(text)
      if (who === 'attacker') errors.attackerTurnedAway++
      else if (pushedOut) errors.honestPushedOut++
      else errors.honestTurnedAway++
      // A client told to go away comes back at once: the queue, not a pause, decides its share.
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  await Promise.all([
    ...Array.from({ length: HONEST_WORKERS }, () => worker('honest')),
    ...Array.from({ length: ATTACKER_WORKERS }, () => worker('attacker')),
  ])
  await dispatcher.close()
  await stack.close()
  const measured = stack.served.filter((s) => s.at >= warmUpMs && s.at <= durationMs)
  const honest = measured.filter((s) => s.who === 'honest').length
  return {
    name: attack.name,
    queueSize: attack.queueSize,
    honestShare: honest / measured.length,
    served: measured.length,
    ...errors,
  }
}

/** Every attack in turn; `quick` shortens each. @param {{ quick: boolean }} options */
export async function tenantIdAttacks({ quick }) {
  const durationMs = quick ? 4_000 : 15_000
  const warmUpMs = quick ? 1_000 : 3_000
  /** @type {Attack[]} */
  const attacks = [
    { name: 'one key', queueSize: 100, attackerKey: () => 'sk-attacker' },
    { name: 'a new key per request', queueSize: 100, attackerKey: (n) => `sk-minted-${n}` },
    { name: 'a new key per request, queue of 8 (full)', queueSize: 8, attackerKey: (n) => `sk-minted-${n}` },
    {
      name: `${ATTACKER_WORKERS} keys, each reused`,
      queueSize: 100,
      attackerKey: (n) => `sk-pool-${n % ATTACKER_WORKERS}`,
    },
  ]
  const figures = []
  for (const attack of attacks) figures.push(await runAttack(attack, durationMs, warmUpMs))
  return { figures, durationMs, warmUpMs, honestWorkers: HONEST_WORKERS, attackerWorkers: ATTACKER_WORKERS }
}
