import { afterEach, expect, it } from 'vitest'
import { Cleanup, chat, fake, send } from '../helpers/http.js'
import { configFile, gatewayYaml, startCli } from './support.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const ask = (port: number) => send(port, { path: '/v1/chat/completions', body: chat({ max_tokens: 40 }) })

it('keeps token budgets across a reload, on the memory store every config generation shares', async () => {
  const a = await fake(cleanup, { name: 'a', answerTokens: 40 })
  const extra = 'defaultTokens: 100 per minute\n'
  const file = configFile(gatewayYaml([{ url: a.url, id: 'a' }], extra))
  const { gateway, port, logs } = await startCli(cleanup, file.path)
  const first = await ask(port)
  expect(first.status).toBe(200)
  const left = Number(/"tokens-100-per-minute";r=(\d+)/.exec(String(first.headers.ratelimit))?.[1])
  expect(left).toBeLessThan(100)
  file.write(`${gatewayYaml([{ url: a.url, id: 'a' }], extra)}# reloaded\n`)
  expect(await gateway.reload()).toBe(true)
  const after = await ask(port)
  const leftAfter = Number(/"tokens-100-per-minute";r=(\d+)/.exec(String(after.headers.ratelimit))?.[1])
  // The budget spent before the reload is still spent.
  expect(leftAfter).toBeLessThan(left)
  expect(logs.messages().filter((m) => m.includes('reserve()/settle()'))).toEqual([])
})
