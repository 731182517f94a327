/**
 * What each routing-state script costs Redis: server time per call (INFO commandstats) and the
 * round trip seen by one client, on a private redis-server, for a request with 3 candidate
 * backends and a prompt of 36 blocks (the replicas benchmark's longest conversations).
 *
 *   node bench/routing-state-scripts.js
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import { SCRIPTS } from '../packages/core/dist/balance/routing-state/routing-scripts.js'

const port = await new Promise((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address())
    server.close(() => resolve(port))
  })
})
const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
  stdio: 'ignore',
})
const r = new Redis({ port, lazyConnect: true, retryStrategy: () => 50 })
r.on('error', () => {})
for (let i = 0; i < 100 && r.status !== 'ready'; i++) {
  await r.connect().catch(() => new Promise((resolve) => setTimeout(resolve, 50)))
}
const base = 'cost:{routing}:'
const ids = ['a', 'b', 'c']
const blocks = Array.from({ length: 36 }, (_, i) => String(1e12 + i * 7919))
await r.eval(SCRIPTS.heartbeat.script, 1, base, 'me', 5000, 3, 'a', 0, 'b', 0, 'c', 0)
const rows = []
for (const [name, script, args] of [
  ['view (3 candidates, 36 blocks)', SCRIPTS.view, ['me', 600000, 3, ...ids, 36, blocks.join(' ')]],
  [
    'claim, recording 36 blocks as home',
    SCRIPTS.claim,
    ['me', 5000, 'a', -1, 3, ...ids, 36, 1, 16384, 600000, blocks.join(' ')],
  ],
  [
    'claim, recording 36 blocks as guest',
    SCRIPTS.claim,
    ['me', 5000, 'b', -1, 3, ...ids, 36, 0, 16384, 600000, blocks.join(' ')],
  ],
  [
    'claim, lease only (maxConcurrency)',
    SCRIPTS.claim,
    ['me', 5000, 'c', 1_000_000, 3, ...ids, 0, 0, 16384, 600000, ''],
  ],
  ['release', SCRIPTS.release, ['me', 'a']],
  ['heartbeat (3 backends)', SCRIPTS.heartbeat, ['me', 5000, 3, 'a', 1, 'b', 0, 'c', 0]],
]) {
  await r.eval(script.script, 1, base, ...args)
  await r.config('RESETSTAT')
  const n = 2000
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await r.evalsha(script.sha, 1, base, ...args)
  const ms = (performance.now() - t0) / n
  const stats = await r.info('commandstats')
  const us = Number(/cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(stats)?.[1])
  rows.push(`| ${name} | ${us.toFixed(1)} | ${(ms * 1000).toFixed(0)} |`)
}
r.disconnect()
child.kill('SIGKILL')
console.log(['| script | Redis µs/call | round trip µs |', '| --- | ---: | ---: |', ...rows].join('\n'))
