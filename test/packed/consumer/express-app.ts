// Compiled by test/packed/consumer.test.ts against the packed @tollgate/express, as a user's app.
import type { Server } from 'node:http'
import { expressServer, type LimitDecision, OptionError, tollgate } from '@tollgate/express'
import express, { type Request } from 'express'

const gate = tollgate({ defaultLimits: '200 per day, 50 per hour' })
const app = express()

app.get('/limited', gate.limit('10 per minute'), (req, res) => {
  const decision: LimitDecision | undefined = req.rateLimit
  const remaining: number | undefined = req.rateLimit?.binding.remaining
  // @ts-expect-error the decision is typed, not `any`: remaining is a number
  const wrong: string | undefined = req.rateLimit?.binding.remaining
  res.json({ decision, remaining, wrong })
})

// The augmentation reaches Express's Request type itself, not only the handlers above.
export const remainingOf = (req: Request): number | undefined => req.rateLimit?.binding.remaining
export const isOptionError = (err: unknown): boolean => err instanceof OptionError
// Served the way the README says (app.listen() works too, with a longer latency tail).
export const server: Server = expressServer(app, { keepAliveTimeout: 65_000 })
export { app, gate }
