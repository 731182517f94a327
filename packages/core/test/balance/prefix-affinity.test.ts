import { describe, expect, it } from 'vitest'
import type { BackendState } from '../../src/balance/backend-state.js'
import { PrefixAffinityPicker } from '../../src/balance/pickers/prefix-affinity.js'
import { hashPromptBlocks, PrefixIndex } from '../../src/balance/prefix-index.js'
import { promptTextOf } from '../../src/gateway/prompt-text.js'
import { registryOf } from './helpers.js'

const BLOCK = 8
const system = (name: string) => `${name}: the system prompt `.padEnd(4 * BLOCK, '.')

function hashes(prompt: string, maxBlocks = 16): number[] {
  const out = new Float64Array(maxBlocks)
  const n = hashPromptBlocks(prompt, BLOCK, maxBlocks, out)
  return [...out.subarray(0, n)]
}

describe('prefix blocks', () => {
  it('hash whole blocks only, each covering the blocks before it', () => {
    const a = hashes('aaaaaaaabbbbbbbbcccc')
    expect(a.length).toBe(2)
    const b = hashes('xaaaaaaabbbbbbbb')
    // The second block is the same text, but behind a different first block.
    expect(b[1]).not.toBe(a[1])
    expect(hashes('aaaaaaaabbbbbbbbdddddddd').slice(0, 2)).toEqual(a)
  })

  it('the index forgets the least recently used, a chain from its tail', () => {
    const index = new PrefixIndex(3)
    const h = new Float64Array(hashes('aaaaaaaabbbbbbbbcccccccc'))
    index.record(h, 3)
    expect(index.matchLength(h, 3)).toBe(3)
    const other = new Float64Array(hashes('zzzzzzzz'))
    index.record(other, 1)
    expect(index.size).toBe(3)
    expect(index.matchLength(h, 3)).toBe(2)
    expect(index.matchLength(other, 1)).toBe(1)
  })
})

describe('promptTextOf', () => {
  it('reads messages with their roles, prompt and input, bounded', () => {
    const chat = {
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image_url' }] },
      ],
    }
    expect(promptTextOf(chat, 1000)).toBe('system\nbe brief\nuser\nhi\n')
    expect(promptTextOf(chat, 10)).toBe('system\nbe ')
    expect(promptTextOf({ prompt: 'once upon' }, 100)).toBe('once upon')
    expect(promptTextOf({ prompt: ['first', 'second'] }, 100)).toBe('first')
    expect(promptTextOf({ input: 'hello' }, 100)).toBe('hello')
    expect(
      promptTextOf({ input: [{ role: 'user', content: [{ type: 'input_text', text: 'x' }] }] }, 100),
    ).toBe('user\nx\n')
    expect(promptTextOf({ model: 'm' }, 100)).toBeUndefined()
    expect(promptTextOf('text', 100)).toBeUndefined()
  })
})

describe('PrefixAffinityPicker', () => {
  function setup(weights = [1, 1, 1], loadFactor = 0.5) {
    const { registry, backends } = registryOf(weights)
    const picker = new PrefixAffinityPicker({ blockChars: BLOCK, maxBlocks: 16, loadFactor })
    const pick = (prompt: string | undefined): BackendState => {
      const chosen = picker.pick(backends, { prompt }) as BackendState
      return chosen
    }
    return { registry, backends, picker, pick }
  }

  it('sends a conversation back to the backend that served its prefix, the longest match winning', () => {
    const { pick } = setup()
    const first = pick(system('alpha')).id
    const other = pick(system('beta')).id
    expect(other).not.toBe(first)
    for (let turn = 0; turn < 5; turn++) {
      expect(pick(`${system('alpha')}user: turn ${turn} of the conversation`).id).toBe(first)
      expect(pick(`${system('beta')}user: turn ${turn} of the conversation`).id).toBe(other)
    }
  })

  it('without a prompt or a match it picks by load', () => {
    const { pick, backends } = setup()
    ;(backends[0] as BackendState).inFlight = 3
    ;(backends[1] as BackendState).inFlight = 1
    expect(pick(undefined).id).toBe('C')
    expect(pick('short').id).toBe('C')
  })

  it('yields to load when the preferred backend is past the bound; the spill target holds the prefix as a guest', async () => {
    const { pick, backends, picker } = setup([1, 1, 1], 0.5)
    const hot = `${system('hot')}user: hello there`
    const home = pick(hot)
    home.inFlight = 1
    // Bound with the others idle: ceil(1.5 × (1 + 1) / 3) = 1, so a second one in flight spills.
    const spill = pick(hot)
    expect(spill.id).not.toBe(home.id)
    spill.inFlight = 1
    home.inFlight = 0
    expect(pick(hot).id).toBe(home.id)
    // Home busy again: the spill goes to the guest, which holds the prompt, not to the idle third.
    home.inFlight = 1
    spill.inFlight = 0
    expect(pick(hot).id).toBe(spill.id)
    const idle = backends.find((b) => b !== home && b !== spill) as BackendState
    expect(idle.inFlight).toBe(0)
    expect(picker.stats.requests).toBe(4)
    expect(picker.stats.affinityHits).toBe(2)
  })

  it('does not make a spill target a second home: with equal loads the prefix goes home', () => {
    const { pick, backends } = setup()
    const [a, b, c] = backends as [BackendState, BackendState, BackendState]
    const hot = `${system('hot')}user: hello there`
    // The home is the last candidate, the spill target comes before it.
    a.inFlight = 1
    b.inFlight = 1
    expect(pick(hot).id).toBe('C')
    a.inFlight = 0
    b.inFlight = 0
    c.inFlight = 1
    expect(pick(hot).id).not.toBe('C')
    c.inFlight = 0
    for (let i = 0; i < 6; i++) expect(pick(`${system('hot')}user: question ${i}`).id).toBe('C')
  })

  it('a prompt whose home is out of the candidates spills as a guest, and goes home once it is back', () => {
    const { picker, backends, registry } = setup()
    const hot = `${system('hot')}user: hello there`
    const home = picker.pick(backends, { prompt: hot }, registry) as BackendState
    // The home at maxConcurrency or saturated: the balancer leaves it out of the candidates.
    const others = backends.filter((b) => b !== home)
    const spill = picker.pick(others, { prompt: hot }, registry) as BackendState
    expect(spill.id).not.toBe(home.id)
    for (let i = 0; i < 3; i++) expect(picker.pick(backends, { prompt: hot }, registry)?.id).toBe(home.id)
  })

  it('a guest becomes the home once it holds a longer prefix than the home', () => {
    const { pick } = setup()
    const opening = `${system('chat')}user: first question, asked at some length...`
    const home = pick(opening)
    home.inFlight = 1
    const next = `${opening}assistant: an answer of a block or two, long enough..user: more`
    const spill = pick(next)
    expect(spill.id).not.toBe(home.id)
    home.inFlight = 0
    spill.inFlight = 0
    // The conversation's history is on the spill target only: it is the home from now on.
    const third = `${next}assistant: and another answer, also long enough..user: again`
    expect(pick(third).id).toBe(spill.id)
    home.inFlight = 1
    expect(pick(`${third}assistant: once more, with feeling, long.....user: bye`).id).toBe(spill.id)
  })

  it('places new prompts on an idle pool by how much each backend holds, so they spread', () => {
    const { pick } = setup()
    const counts: Record<string, number> = {}
    for (let i = 0; i < 12; i++) {
      const id = pick(`${system(`c${i}`)}user: hello`).id
      counts[id] = (counts[id] ?? 0) + 1
    }
    expect(counts).toEqual({ A: 4, B: 4, C: 4 })
  })

  describe('with a learned price of a cold prefill', () => {
    // Two batch slots each; 20 ms per uncached block.
    function trained(loadFactor = 0.5) {
      const s = setup([1, 1, 1], loadFactor)
      for (const b of s.backends) b.reportedSlots = 2
      const ok = { ok: true, latencyMs: 5 }
      // Attempts of 180 ms with everything cached, 260 ms with 4 blocks cold: 200 ms on average.
      for (let i = 0; i < 40; i++) {
        const uncached = i % 2 === 0 ? 0 : 4
        for (const b of s.backends) s.picker.attemptEnded(b, uncached + 1, ok, 180 + 20 * uncached)
      }
      return s
    }

    it('learns the price of a block from the attempts that found a free slot', () => {
      const { picker } = trained()
      expect(picker.prefillMsPerBlock).toBeCloseTo(20, 5)
    })

    it('keeps a prompt on its home past the load bound while a batch slot is free there', () => {
      const { pick, backends } = trained()
      const long = `${system('long')}${'x'.repeat(8 * BLOCK)}`
      const home = pick(long)
      home.inFlight = 1
      // Past the bound (2 > ceil(1.5 × 2 / 3) = 1), but one of its two slots is free.
      expect(pick(long).id).toBe(home.id)
      expect(backends.filter((b) => b !== home).every((b) => b.inFlight === 0)).toBe(true)
    })

    it('waits for the warm home when the wait costs less than a cold prefill, and spills when it costs more', () => {
      const { pick, picker } = trained()
      const long = `${system('long')}${'x'.repeat(8 * BLOCK)}`
      const home = pick(long)
      // Both slots busy: the next waits about a third of an attempt (~73 ms) there, against 12 cold blocks × 20 ms elsewhere.
      home.inFlight = 2
      expect(pick(long).id).toBe(home.id)
      expect(picker.stats.waitedForHome).toBe(1)
      // Six queued before it: ~73 + 5 × 110 ms, more than the 240 ms prefill.
      home.inFlight = 7
      expect(pick(long).id).not.toBe(home.id)
    })

    it('prices a cold prefill beside running requests higher, as it stalls their decoding', () => {
      const { pick, backends } = trained()
      const long = `${system('long')}${'x'.repeat(8 * BLOCK)}`
      const home = pick(long)
      const others = backends.filter((b) => b !== home)
      // Two queued before it at home: ~73 + 110 + 110 ms. The others each run one request, which a
      // cold prefill of 12 blocks × 20 ms there would hold up too: 2 × 240 ms.
      home.inFlight = 4
      for (const b of others) b.inFlight = 1
      expect(pick(long).id).toBe(home.id)
      // On an idle backend the prefill holds up nobody: 240 ms, sooner than the wait at home.
      for (const b of others) b.inFlight = 0
      expect(others).toContain(pick(long))
    })
  })

  it('reads the hashes handed over for its next prompt instead of hashing it again, for that prompt and that pick only', () => {
    const { pick, picker } = setup()
    const beta = system('beta')
    const betaHome = pick(beta)
    const handed = new Float64Array(16)
    const count = hashPromptBlocks(beta, BLOCK, 16, handed)
    // Hashes that are not the prompt's show which the pick read: the handed ones lead to beta's home.
    const alpha = system('alpha')
    picker.hashed(alpha, handed, count)
    expect(pick(alpha).id).toBe(betaHome.id)
    // Handed over for another prompt: the pick hashes its own.
    const gamma = system('gamma')
    picker.hashed(`${gamma} and more`, handed, count)
    expect(pick(gamma).id).not.toBe(betaHome.id)
    // Only the next pick: a later one for the same prompt hashes it.
    picker.hashed(gamma, handed, count)
    const again = pick(gamma)
    expect(again.id).toBe(betaHome.id)
    expect(pick(gamma).id).not.toBe(betaHome.id)
  })

  it('rejects bad knobs naming them', () => {
    expect(() => new PrefixAffinityPicker({ blockChars: 0 })).toThrow('option "prefixAffinity.blockChars"')
    expect(() => new PrefixAffinityPicker({ loadFactor: -1 })).toThrow('option "prefixAffinity.loadFactor"')
  })
})
