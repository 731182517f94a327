// `npm start`: three fake model servers of different speeds behind a Fastify gateway with
// "1000 per day, 20 per minute" limits (a person trying it who runs out waits a minute at most)
// and the least-latency strategy.
import { startFakeModelServer } from './fake-model-server.js'
import { buildGateway } from './fastify-gateway.js'

const servers = await Promise.all([
  startFakeModelServer({ name: 'fast', capacity: 8, timeToFirstTokenMs: 40, timePerTokenMs: 15 }),
  startFakeModelServer({ name: 'medium', capacity: 4, timeToFirstTokenMs: 120, timePerTokenMs: 40 }),
  startFakeModelServer({ name: 'slow', capacity: 2, timeToFirstTokenMs: 400, timePerTokenMs: 120 }),
])
const app = await buildGateway({
  backends: servers.map((s) => ({ url: s.url, id: s.name, models: s.models })),
  strategy: 'least-latency',
  defaultLimits: '1000 per day, 20 per minute',
  backendHeader: 'x-tollgate-backend',
})
await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
const base = `http://127.0.0.1:${app.server.address().port}`

console.log(`tollgate demo gateway on ${base}
backends: ${servers.map((s) => `${s.name} ${s.url}`).join(', ')}

try:
  curl ${base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}'
  curl -N ${base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"fake-model","stream":true,"messages":[{"role":"user","content":"hi"}]}'
  curl ${base}/gateway/backends
Ctrl-C stops it.`)

async function stop() {
  await app.close()
  await Promise.all(servers.map((s) => s.close()))
  process.exit(0)
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
