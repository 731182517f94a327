// A Fastify app with flask-limiter-style limits. Run: npm run build && node examples/fastify-limits.js

import tollgate from '@tollgate/fastify'
import Fastify from 'fastify'

export async function buildLimitsApp(options = {}) {
  const app = Fastify({ logger: options.logger ?? false })
  await app.register(tollgate, {
    defaultLimits: '200 per day, 50 per hour',
    store: options.store,
  })

  // Default limits, counted for this route alone.
  app.get('/hello', async () => ({ hello: 'world' }))
  // Its own, stricter limit.
  app.get('/expensive', { config: { rateLimit: '5 per minute' } }, async (request) => ({
    remaining: request.rateLimit?.binding.remaining,
  }))
  // Not limited at all.
  app.get('/health', { config: { rateLimit: false } }, async () => ({ ok: true }))
  return app
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const app = await buildLimitsApp({ logger: true })
  const port = Number(process.env.PORT ?? 3000)
  await app.listen({ port, host: '127.0.0.1' })
  console.log(`try: curl -i http://127.0.0.1:${app.server.address().port}/expensive`)
  const stop = () => app.close().then(() => process.exit(0))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
