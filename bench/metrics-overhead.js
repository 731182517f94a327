// A/B of what metrics cost a forwarded stream: CPU per request of one process (client, gateway and
// fake backend together), metrics off vs on, alternating rounds. Run after `npm run build`:
// node bench/metrics-overhead.js
import http from 'node:http'
import tollgate from '@tollgate/fastify'
import Fastify from 'fastify'
import { startFakeModelServer } from '../examples/fake-model-server.js'

const fake = await startFakeModelServer({ timePerTokenMs: 0, answerTokens: 4 })
async function gateway(extra) {
  const app = Fastify()
  await app.register(tollgate, { backends: [{ url: fake.url, models: ['fake-model'] }], ...extra })
  app.post('/v1/chat/completions', { config: { rateLimit: false } }, app.tollgate.forward())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: app.server.address().port }
}
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
const body = JSON.stringify({
  model: 'fake-model',
  messages: [{ role: 'user', content: 'hi' }],
  stream: true,
})
function one(port) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        port,
        method: 'POST',
        path: '/v1/chat/completions',
        agent,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        res.resume()
        res.on('end', resolve)
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}
async function round(port, n) {
  const start = process.cpuUsage()
  let next = 0
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next++ < n) await one(port)
    }),
  )
  const used = process.cpuUsage(start)
  return (used.user + used.system) / n
}
const off = await gateway({})
const on = await gateway({ metrics: true })
await round(off.port, 1000)
await round(on.port, 1000)
const results = { off: [], on: [] }
for (let r = 0; r < 6; r++) {
  const order = r % 2 ? ['on', 'off'] : ['off', 'on']
  for (const k of order) results[k].push(await round(k === 'off' ? off.port : on.port, 2000))
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
console.log('µs CPU per request (whole process), median of 6 rounds of 2000:', {
  off: median(results.off).toFixed(1),
  on: median(results.on).toFixed(1),
})
const ratios = results.on.map((v, i) => v / results.off[i])
console.log('median per-round ratio on/off:', median(ratios).toFixed(3))
console.log(JSON.stringify(results))
await off.app.close()
await on.app.close()
await fake.close()
agent.destroy()
