// Compiled by test/packed/consumer.test.ts against the packed @tollgate/fastify, as a user's app.
import tollgate, { type LimitDecision, OptionError } from '@tollgate/fastify'
import Fastify from 'fastify'

const app = Fastify()
await app.register(tollgate, { defaultLimits: '200 per day, 50 per hour' })

app.get('/limited', { config: { rateLimit: '10 per minute' } }, async (request) => {
  const decision: LimitDecision | null = request.rateLimit
  const remaining: number | undefined = request.rateLimit?.binding.remaining
  // @ts-expect-error the decision is typed, not `any`: remaining is a number
  const wrong: string | undefined = request.rateLimit?.binding.remaining
  return { decision, remaining, wrong }
})

export const isOptionError = (err: unknown): boolean => err instanceof OptionError
