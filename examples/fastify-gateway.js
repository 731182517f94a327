// A Fastify gateway in front of OpenAI-compatible model servers: limits plus load-aware balancing.
// Run: npm run build && BACKENDS=http://127.0.0.1:8001,http://127.0.0.1:8002 node examples/fastify-gateway.js
import tollgate from '@tollgate/fastify'
import Fastify from 'fastify'

export async function buildGateway({
  backends,
  strategy = 'least-latency',
  logger = false,
  store,
  shutdownTimeoutMs,
  defaultLimits = '200 per day, 50 per hour',
  backendHeader,
} = {}) {
  const app = Fastify({ logger })
  await app.register(tollgate, {
    defaultLimits,
    store,
    backends,
    strategy,
    // A response header naming the backend that answered (e.g. 'x-tollgate-backend'); off by default.
    backendHeader,
    // On close, in-flight streams get this long to finish before they are cut (default 10 s).
    shutdownTimeoutMs,
  })

  app.post('/v1/chat/completions', app.tollgate.forward())
  app.post('/v1/completions', app.tollgate.forward())
  // Answered from the registry: every model any backend declares.
  app.get('/v1/models', { config: { rateLimit: false } }, app.tollgate.listModels())
  app.get('/gateway/backends', { config: { rateLimit: false } }, async () => app.tollgate.backends.snapshot())
  return app
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const backends = (process.env.BACKENDS ?? '')
    .split(',')
    .filter(Boolean)
    .map((url) => ({ url }))
  if (backends.length === 0) {
    console.error('set BACKENDS to a comma-separated list of model server URLs')
    process.exit(1)
  }
  const app = await buildGateway({ backends, logger: true })
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
  // app.close() stops taking requests, lets in-flight streams finish up to shutdownTimeoutMs,
  // then closes every connection.
  const stop = () => app.close().then(() => process.exit(0))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
