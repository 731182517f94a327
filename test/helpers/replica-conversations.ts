import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { expect } from 'vitest'
import { type Answer, chat, send, waitFor } from './http.js'

/** A fresh routing-state key prefix, so parallel test files never share a replica set. */
export const routingPrefix = () => `tollgate-test:${randomBytes(6).toString('hex')}:`

/** A replica shares from its first answered heartbeat on: then it is in the replica set. */
export function sharing(redis: Redis, prefix: string, replicas: number): Promise<void> {
  return waitFor(
    async () => (await redis.zcard(`${prefix}{routing}:replicas`)) === replicas,
    'replicas sharing',
  )
}

export function ask(port: number, body: Record<string, unknown> = chat({ max_tokens: 2 })): Promise<Answer> {
  return send(port, { path: '/v1/chat/completions', body })
}

/** Turn `n` of a conversation under `system`: its history so far, then the next question. */
export function turn(system: string, n: number): Record<string, unknown> {
  const messages: { role: string; content: string }[] = [{ role: 'system', content: system }]
  for (let i = 0; i < n; i++) {
    messages.push({ role: 'user', content: `question ${i}` }, { role: 'assistant', content: `answer ${i}` })
  }
  messages.push({ role: 'user', content: `question ${n}` })
  return chat({ messages, max_tokens: 2 })
}

/**
 * Opens six conversations on the first replica while it alone has two long answers running (so it
 * places them by a load the others did not see), continues them on the second and third, and
 * answers the share of later turns that came back to the conversation's first backend.
 */
export async function shareReturningHome(ports: readonly number[]): Promise<number> {
  const [opener, ...others] = ports
  const background = [0, 1].map(() => ask(opener!, chat({ max_tokens: 60 })))
  await new Promise((resolve) => setTimeout(resolve, 100))
  const conversations = Array.from(
    { length: 6 },
    (_, i) => `conversation ${i}: ${'Answer in the voice of the house and cite your sources. '.repeat(40)}`,
  )
  const first = new Map<string, string>()
  for (const system of conversations) {
    const answer = await ask(opener!, turn(system, 0))
    expect(answer.status).toBe(200)
    first.set(system, String(answer.headers['x-backend']))
  }
  let returned = 0
  let later = 0
  for (let n = 1; n < 4; n++) {
    for (const system of conversations) {
      const answer = await ask(others[n % others.length]!, turn(system, n))
      expect(answer.status).toBe(200)
      later++
      if (first.get(system) === String(answer.headers['x-backend'])) returned++
    }
  }
  await Promise.all(background)
  return returned / later
}
