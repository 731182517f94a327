import { tollgate as expressTollgate, OptionError, type TollgateExpressOptions } from '@tollgate/express'
import fastifyTollgate, {
  OptionError as FastifyOptionError,
  type TollgateFastifyOptions,
} from '@tollgate/fastify'
import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'

// Every wrong option fails when the app starts (Express: at tollgate(); Fastify: at register),
// with a message that names the option and quotes the value, so the fix is one look away.

const B = [{ url: 'http://127.0.0.1:9' }]

interface Case {
  /** How the message names the option. */
  option: string
  options: Record<string, unknown>
  /** The bad value as the message should show it. */
  value: string | number | boolean | null
}

const cases: Case[] = [
  // limits
  { option: 'defaultLimits', options: { defaultLimits: 5 }, value: 5 },
  { option: 'defaultLimits', options: { defaultLimits: '5 per fortnight' }, value: '5 per fortnight' },
  { option: 'defaultLimits', options: { defaultLimits: '0 per second' }, value: '0 per second' },
  { option: 'applicationLimits', options: { applicationLimits: '10 per minute,' }, value: '10 per minute,' },
  { option: 'keyGenerator', options: { keyGenerator: 'ip' }, value: 'ip' },
  { option: 'cost', options: { cost: -1 }, value: -1 },
  { option: 'cost', options: { cost: 1.5 }, value: 1.5 },
  { option: 'store', options: { store: 'redis' }, value: 'redis' },
  { option: 'store.redis', options: { store: { redis: 'redis://localhost' } }, value: 'redis://localhost' },
  { option: 'keyPrefix', options: { keyPrefix: '{x}' }, value: '{x}' },
  { option: 'keyPrefix', options: { keyPrefix: 7 }, value: 7 },
  { option: 'headers', options: { headers: 'draft7' }, value: 'draft7' },
  { option: 'skip', options: { skip: true }, value: true },
  { option: 'allowList', options: { allowList: '1.2.3.4' }, value: '1.2.3.4' },
  { option: 'rejectionBody', options: { rejectionBody: 'slow down' }, value: 'slow down' },
  { option: 'onExceeded', options: { onExceeded: 1 }, value: 1 },
  { option: 'logger', options: { logger: 'console' }, value: 'console' },
  { option: 'defaultLimit', options: { defaultLimit: '1/second' }, value: null },
  // balancing and forwarding
  { option: 'backends', options: { backends: 'http://x' }, value: 'http://x' },
  { option: 'backends[0].url', options: { backends: [{ url: 'ftp://x' }] }, value: 'ftp://x' },
  { option: 'backends[0].url', options: { backends: [{ url: 'http://u:pw@x' }] }, value: null },
  { option: 'backends[0].weight', options: { backends: [{ url: 'http://x', weight: -1 }] }, value: -1 },
  {
    option: 'backends[0].maxConcurrency',
    options: { backends: [{ url: 'http://x', maxConcurrency: 1.5 }] },
    value: 1.5,
  },
  {
    option: 'backends[0].models',
    options: { backends: [{ url: 'http://x', models: 'llama' }] },
    value: 'llama',
  },
  { option: 'backends[0].wieght', options: { backends: [{ url: 'http://x', wieght: 2 }] }, value: null },
  {
    option: 'backends[1].id',
    options: { backends: [{ url: 'http://x' }, { url: 'http://x' }] },
    value: 'http://x',
  },
  { option: 'strategy', options: { backends: B, strategy: 'fastest' }, value: 'fastest' },
  { option: 'strategy', options: { backends: B, strategy: 5 }, value: 5 },
  { option: 'consistentHash', options: { backends: B, consistentHash: 'x' }, value: 'x' },
  {
    option: 'consistentHash.loadFactor',
    options: { backends: B, consistentHash: { loadFactor: -1 } },
    value: -1,
  },
  { option: 'health', options: { backends: B, health: 'yes' }, value: 'yes' },
  { option: 'health.ejection', options: { backends: B, health: { ejection: {} } }, value: null },
  { option: 'health.outlier', options: { backends: B, health: { outlier: 'on' } }, value: 'on' },
  {
    option: 'health.outlier.consecutiveFailures',
    options: { backends: B, health: { outlier: { consecutiveFailures: 0 } } },
    value: 0,
  },
  {
    option: 'health.outlier.baseEjectionMs',
    options: { backends: B, health: { outlier: { baseEjectionMs: '30s' } } },
    value: '30s',
  },
  { option: 'health.activeCheck', options: { backends: B, health: { activeCheck: 'yes' } }, value: 'yes' },
  {
    option: 'health.activeCheck.path',
    options: { backends: B, health: { activeCheck: { path: 'health' } } },
    value: 'health',
  },
  {
    option: 'health.activeCheck.intervalMs',
    options: { backends: B, health: { activeCheck: { intervalMs: -1 } } },
    value: -1,
  },
  { option: 'health.maxCoolDownMs', options: { backends: B, health: { maxCoolDownMs: -1 } }, value: -1 },
  { option: 'queue', options: { backends: B, queue: 5 }, value: 5 },
  { option: 'queue.length', options: { backends: B, queue: { length: 5 } }, value: null },
  { option: 'queue.size', options: { backends: B, queue: { size: -1 } }, value: -1 },
  { option: 'queue.timeoutMs', options: { backends: B, queue: { timeoutMs: 0 } }, value: 0 },
  { option: 'latencyDecayMs', options: { backends: B, latencyDecayMs: 0 }, value: 0 },
  { option: 'failurePenaltyMs', options: { backends: B, failurePenaltyMs: 'x' }, value: 'x' },
  { option: 'connectTimeoutMs', options: { backends: B, connectTimeoutMs: 0 }, value: 0 },
  { option: 'firstByteTimeoutMs', options: { backends: B, firstByteTimeoutMs: -1 }, value: -1 },
  { option: 'idleTimeoutMs', options: { backends: B, idleTimeoutMs: '2m' }, value: '2m' },
  { option: 'keepAliveTimeoutMs', options: { backends: B, keepAliveTimeoutMs: 1.5 }, value: 1.5 },
  { option: 'connectionsPerBackend', options: { backends: B, connectionsPerBackend: 0 }, value: 0 },
  { option: 'maxAttempts', options: { backends: B, maxAttempts: 0 }, value: 0 },
  { option: 'maxAttempts', options: { backends: B, maxAttempts: '3' }, value: '3' },
  {
    option: 'maxAttempts',
    options: { backends: B, maxAttempts: Number.POSITIVE_INFINITY },
    value: 'Infinity',
  },
  { option: 'retryBudget', options: { backends: B, retryBudget: 'x' }, value: 'x' },
  { option: 'retryBudget.ratio', options: { backends: B, retryBudget: { ratio: -1 } }, value: -1 },
  { option: 'retryBudget.percent', options: { backends: B, retryBudget: { percent: 20 } }, value: null },
  { option: 'maxReplayBodyBytes', options: { backends: B, maxReplayBodyBytes: -1 }, value: -1 },
  { option: 'maxBodyBytes', options: { backends: B, maxBodyBytes: 0 }, value: 0 },
  { option: 'maxBodyBytes', options: { backends: B, maxBodyBytes: '10mb' }, value: '10mb' },
  { option: 'onUnexpectedError', options: { backends: B, onUnexpectedError: 'log' }, value: 'log' },
  { option: 'hashKey', options: { backends: B, hashKey: 5 }, value: 5 },
  { option: 'hashKey', options: { backends: B, hashKey: '' }, value: '' },
  { option: 'shutdownTimeoutMs', options: { backends: B, shutdownTimeoutMs: -1 }, value: -1 },
  { option: 'shutdownTimeoutMs', options: { backends: B, shutdownTimeoutMs: 1e12 }, value: 1e12 },
]

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** The value as either quoting style shows it (`'x'` or `"x"`), or bare for numbers and booleans. */
function valuePattern(value: Case['value']): RegExp {
  if (typeof value === 'string') {
    return new RegExp(`['"]${escapeRegExp(value)}['"]|got ${escapeRegExp(value)}\\b`)
  }
  return new RegExp(escapeRegExp(String(value)))
}

/**
 * Options checked by the forwarder's own modules and by the notation parser, which have their
 * own message tests; every other option error is an OptionError in the one shared format.
 */
const CHECKED_ELSEWHERE =
  /^(defaultLimits|applicationLimits|connectTimeoutMs|firstByteTimeoutMs|idleTimeoutMs|keepAliveTimeoutMs|connectionsPerBackend|maxAttempts|retryBudget|maxReplayBodyBytes|maxBodyBytes)\b/

const FORMAT =
  /^tollgate: (option "[^"]+" (must be .+; got .+|.+)|unknown option "[^"]+"(; did you mean "[^"]+"\?)? Known options are .+)$/s

function expectNamed(error: unknown, c: Case): void {
  expect(error).toBeInstanceOf(Error)
  const message = (error as Error).message
  expect(message).toContain(c.option)
  if (c.value !== null) expect(message).toMatch(valuePattern(c.value))
  if (!CHECKED_ELSEWHERE.test(c.option)) {
    expect(error).toBeInstanceOf(OptionError)
    expect(message).toMatch(FORMAT)
  }
}

describe('Express: tollgate() refuses bad options', () => {
  for (const c of cases) {
    it(`${c.option} = ${JSON.stringify(c.options).slice(0, 70)}`, () => {
      let error: unknown
      try {
        void expressTollgate(c.options as never).close()
      } catch (e) {
        error = e
      }
      expectNamed(error, c)
    })
  }

  it('and bad route-level limits and forward options at declaration', () => {
    const gate = expressTollgate({ backends: B })
    try {
      expect(() => gate.limit('5 per fortnight')).toThrow(/fortnight/)
      expect(() => gate.limit({ limits: '1/second', cost: -2 })).toThrow(/cost.*-2/)
      expect(() => gate.forward({ rewrite: 5 } as never)).toThrow(/rewrite.*5/)
      expect(() => gate.forward({ bogus: 1 } as never)).toThrow(/bogus/)
      expect(() => gate.forward({ hashKey: 7 } as never)).toThrow(/hashKey.*7/)
      expect(() => gate.limit(false as never)).toThrow(OptionError)
    } finally {
      void gate.close()
    }
  })
})

describe('Fastify: register refuses bad options', () => {
  for (const c of cases) {
    it(`${c.option} = ${JSON.stringify(c.options).slice(0, 70)}`, async () => {
      const app = Fastify()
      let error: unknown
      try {
        await app.register(fastifyTollgate, c.options as never)
        await app.ready()
      } catch (e) {
        error = e
      } finally {
        await app.close()
      }
      expectNamed(error, c)
    })
  }

  it('and bad route-level limits when the route is added', async () => {
    const app = Fastify()
    await app.register(fastifyTollgate, {})
    try {
      expect(() =>
        app.get('/x', { config: { rateLimit: { limits: '1 per 0 seconds' } } }, async () => 'x'),
      ).toThrow(/0 seconds/)
      expect(() => app.get('/y', { config: { rateLimit: 42 as never } }, async () => 'y')).toThrow(/42/)
    } finally {
      await app.close()
    }
  })

  it('and bad forward options at declaration', async () => {
    const app = Fastify()
    await app.register(fastifyTollgate, { backends: B })
    try {
      expect(() => app.tollgate.forward({ rewrite: { stripPrefix: 'v1' } })).toThrow(/stripPrefix.*v1/)
      expect(() => app.tollgate.forward({ hashKey: '' })).toThrow(/hashKey/)
    } finally {
      await app.close()
    }
  })

  it('one OptionError class for both adapters, and for a call that needs backends', async () => {
    expect(FastifyOptionError).toBe(OptionError)
    const app = Fastify()
    await app.register(fastifyTollgate, {})
    try {
      expect(() => app.tollgate.forward()).toThrow(OptionError)
      expect(() => app.tollgate.forward()).toThrow(
        /^tollgate: option "backends" must be set for app\.tollgate\.forward\(\), e\.g\. register the plugin with/,
      )
      expect(() => app.tollgate.backends).toThrow(OptionError)
    } finally {
      await app.close()
    }
    const gate = expressTollgate({ defaultLimits: '1/second' })
    expect(() => gate.listModels()).toThrow(
      /^tollgate: option "backends" must be set for gate\.listModels\(\)/,
    )
    await gate.close()
  })

  it('names a bad hook option in the shared format', async () => {
    const app = Fastify()
    await expect(app.register(fastifyTollgate, { hook: 'onSend' } as never)).rejects.toThrow(
      'tollgate: option "hook" must be one of "onRequest", "preHandler"; got "onSend"',
    )
    await app.close()
  })
})

// The type makes this list complete (a missing or extra key does not compile); the test makes sure
// the unknown-option check knows every one of them, whichever module keeps its part of the names.
const EVERY_EXPRESS_OPTION: Record<keyof TollgateExpressOptions, true> = {
  defaultLimits: true,
  applicationLimits: true,
  keyGenerator: true,
  cost: true,
  store: true,
  keyPrefix: true,
  headers: true,
  skip: true,
  deductWhen: true,
  allowList: true,
  rejectionBody: true,
  onExceeded: true,
  logger: true,
  backends: true,
  strategy: true,
  consistentHash: true,
  prefixAffinity: true,
  precisePrefix: true,
  loadReports: true,
  loraAffinity: true,
  zone: true,
  zonePreference: true,
  health: true,
  queue: true,
  fairness: true,
  latencyDecayMs: true,
  failurePenaltyMs: true,
  routingState: true,
  connectTimeoutMs: true,
  firstByteTimeoutMs: true,
  idleTimeoutMs: true,
  keepAliveTimeoutMs: true,
  connectionsPerBackend: true,
  maxAttempts: true,
  retryBudget: true,
  maxReplayBodyBytes: true,
  maxBodyBytes: true,
  onUnexpectedError: true,
  hashKey: true,
  shutdownTimeoutMs: true,
  clientRetryMaxSeconds: true,
  uploadTimeoutMs: true,
  metrics: true,
  tracing: true,
  accessLog: true,
  observers: true,
  backendHeader: true,
  defaultTokens: true,
  defaultMaxTokens: true,
  openaiHeaders: true,
  onTokensSettled: true,
  limitStrategy: true,
}
const EVERY_FASTIFY_OPTION: Record<keyof TollgateFastifyOptions, true> = {
  ...EVERY_EXPRESS_OPTION,
  hook: true,
}

describe('the unknown-option check knows every option the types declare', () => {
  it.each(Object.keys(EVERY_EXPRESS_OPTION))('Express: %s', async (name) => {
    let message = ''
    try {
      await expressTollgate({ [name]: true } as never).close()
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).not.toMatch(/unknown option/)
  })

  it.each(Object.keys(EVERY_FASTIFY_OPTION))('Fastify: %s', async (name) => {
    const app = Fastify()
    let message = ''
    try {
      await app.register(fastifyTollgate, { [name]: true } as never)
    } catch (error) {
      message = (error as Error).message
    } finally {
      await app.close()
    }
    expect(message).not.toMatch(/unknown option/)
  })
})
