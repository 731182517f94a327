// An Express app with flask-limiter-style limits. Run: npm run build && node examples/express-limits.js

import { tollgate } from '@tollgate/express'
import express from 'express'

export function buildLimitsApp(options = {}) {
  const gate = tollgate({ defaultLimits: '200 per day, 50 per hour', store: options.store })
  const app = express()

  app.get('/hello', gate.limit(), (_req, res) => res.json({ hello: 'world' }))
  app.get('/expensive', gate.limit('5 per minute'), (req, res) =>
    res.json({ remaining: req.rateLimit?.binding.remaining }),
  )
  // Everything under /api shares one budget.
  app.use('/api', gate.limit('1000 per hour'))
  app.get('/api/items', (_req, res) => res.json([]))
  app.get('/health', (_req, res) => res.json({ ok: true }))
  return { app, gate }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { app, gate } = buildLimitsApp()
  const port = Number(process.env.PORT ?? 3001)
  const server = app.listen(port, '127.0.0.1', () => {
    console.log(`try: curl -i http://127.0.0.1:${server.address().port}/expensive`)
  })
  const stop = () => server.close(() => gate.close().then(() => process.exit(0)))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
