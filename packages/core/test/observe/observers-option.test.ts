import { describe, expect, it } from 'vitest'
import type { GatewayEvents } from '../../src/observe/events.js'
import { Observability } from '../../src/observe/observability.js'

const quiet = { warn: () => {} }
const complete: GatewayEvents = {
  forwardStart: () => undefined,
  limitDecision: () => {},
  backendChange: () => {},
}
const CONSUMERS: [string, unknown][] = [
  ['without limitDecision', { forwardStart: () => undefined, backendChange: () => {} }],
  ['without backendChange', { forwardStart: () => undefined, limitDecision: () => {} }],
  ['without forwardStart', { limitDecision: () => {}, backendChange: () => {} }],
  ['null', null],
]

describe('the observers option', () => {
  it('takes consumers that hear forwards, limit decisions and backend changes', () => {
    expect(() => new Observability({ observers: [complete] }, quiet)).not.toThrow()
  })

  it.each(CONSUMERS)('fails at startup, naming the option, for a consumer %s', (_name, observer) => {
    expect(() => new Observability({ observers: [complete, observer as never] }, quiet)).toThrow(
      /option "observers" must be a list of GatewayEvents consumers/,
    )
  })
})
