// CommonJS consumer: TypeScript must accept this require only because Node does too (Node >= 20.19
// loads the ESM build for require()); test/packed/consumer.test.ts runs the same require.
import express = require('express')
import tollgateExpress = require('@tollgate/express')
import tollgateFastify = require('@tollgate/fastify')
import core = require('@tollgate/core')

const gate = tollgateExpress.tollgate({ defaultLimits: '5 per minute' })
const app = express()
app.get('/', gate.limit(), (req, res) => {
  const remaining: number | undefined = req.rateLimit?.binding.remaining
  res.json({ remaining })
})

const plugin: typeof tollgateFastify.default = tollgateFastify.default
const windows: number[] = core.parseLimits('200 per day').map((l) => l.windowMs)
export = { app, gate, plugin, windows }
