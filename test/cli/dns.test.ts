import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, chat, closedPort, countBy, fake, send } from '../helpers/http.js'
import { startDnsServer } from './dns-server.js'
import { configFile, startCli } from './support.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const ask = (port: number) => send(port, { path: '/v1/chat/completions', body: chat() })

/** The backend ids once `done` holds for them (the discovery re-resolves every 100 ms), or after 5 s. */
async function idsWhen(ids: () => Promise<string[]>, done: (list: string[]) => boolean): Promise<string[]> {
  const deadline = Date.now() + 5_000
  let list = await ids()
  while (!done(list) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    list = await ids()
  }
  return list
}

describe('tollgate serve with a DNS backend entry', () => {
  it('follows the addresses a name resolves to: pods that appear get traffic, pods that vanish none', async () => {
    const dns = await startDnsServer()
    cleanup.add(dns.close, null)
    // Two "pods" on one port, as behind a headless Service.
    const podPort = await closedPort()
    await fake(cleanup, { name: 'pod-1', host: '127.0.0.1', port: podPort, answerTokens: 1 })
    await fake(cleanup, { name: 'pod-2', host: '127.0.0.2', port: podPort, answerTokens: 1 })
    dns.records.set('model.test', ['127.0.0.1'])
    const file = configFile(`listen: { host: 127.0.0.1, port: 0 }
strategy: round-robin
backends:
  - { dns: model.test, port: ${podPort}, models: [fake-model], refreshMs: 100 }
routes:
  - { method: POST, path: /v1/chat/completions, forward: true }
status: { path: /gateway }
`)
    const { port } = await startCli(cleanup, file.path, { dnsResolver: dns.resolver })
    const ids = async () =>
      (await send(port, { path: '/gateway/status.json' })).json().backends.map((b: { id: string }) => b.id)

    expect(await ids()).toEqual([`model.test:${podPort}/127.0.0.1`])
    expect(countBy(await Promise.all([ask(port), ask(port)]))).toEqual({ 'pod-1': 2 })

    dns.records.set('model.test', ['127.0.0.1', '127.0.0.2'])
    let listed = await idsWhen(ids, (list) => list.length === 2)
    expect(listed.sort()).toEqual([`model.test:${podPort}/127.0.0.1`, `model.test:${podPort}/127.0.0.2`])
    const both = countBy(await Promise.all([ask(port), ask(port), ask(port), ask(port)]))
    expect(both).toEqual({ 'pod-1': 2, 'pod-2': 2 })

    dns.records.set('model.test', ['127.0.0.2'])
    listed = await idsWhen(ids, (list) => list.length === 1)
    expect(listed).toEqual([`model.test:${podPort}/127.0.0.2`])
    expect(countBy(await Promise.all([ask(port), ask(port)]))).toEqual({ 'pod-2': 2 })
  })
})
