import { describe, expect, it } from 'vitest'
import { createBalancer } from '../../src/balance/balancer.js'

describe('precise-prefix configuration', () => {
  it('names the option when kvEvents is not a tcp://host:port endpoint', () => {
    for (const bad of ['localhost:5557', 'tcp://*:5557', 'tcp://host', 'tcp://host:70000', 5557]) {
      expect(() =>
        createBalancer({
          backends: [{ url: 'http://127.0.0.1:1', kvEvents: bad as string }],
          strategy: 'precise-prefix',
        }),
      ).toThrow(/backends\[0\]\.kvEvents/)
    }
    expect(() =>
      createBalancer({
        backends: [{ url: 'http://127.0.0.1:1', kvEventsReplay: 'tcp://h:5558' }],
        strategy: 'precise-prefix',
      }),
    ).toThrow(/backends\[0\]\.kvEventsReplay.*needs kvEvents/)
  })

  it('refuses kvEvents under a strategy that would never read it', () => {
    expect(() =>
      createBalancer({
        backends: [{ url: 'http://127.0.0.1:1', kvEvents: 'tcp://127.0.0.1:5557' }],
        strategy: 'least-load',
      }),
    ).toThrow(/kvEvents.*precise-prefix/)
  })

  it('checks its own options by name', () => {
    expect(() =>
      createBalancer({ strategy: 'precise-prefix', precisePrefix: { tokenizeTimeoutMs: 0 } }),
    ).toThrow(/precisePrefix\.tokenizeTimeoutMs/)
    expect(() =>
      createBalancer({ strategy: 'precise-prefix', precisePrefix: { tokenizeUrl: 'ftp://x' } }),
    ).toThrow(/precisePrefix\.tokenizeUrl/)
    expect(() => createBalancer({ strategy: 'precise-prefix', precisePrefix: { nope: 1 } as never })).toThrow(
      /nope/,
    )
  })
})
