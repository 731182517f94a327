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

  it('yields to load when the preferred backend is past the bound, and the new one holds the prefix', () => {
    const { pick, backends, picker } = setup([1, 1, 1], 0.5)
    const hot = `${system('hot')}user: hello there`
    const home = pick(hot)
    home.inFlight = 1
    // Bound with the others idle: ceil(1.5 × (1 + 1) / 3) = 1, so a second one in flight spills.
    const spill = pick(hot)
    expect(spill.id).not.toBe(home.id)
    spill.inFlight = 1
    home.inFlight = 0
    // The spilled-to backend holds the prefix now: both match fully, the less loaded wins.
    expect(pick(hot).id).toBe(home.id)
    home.inFlight = 1
    spill.inFlight = 0
    expect(pick(hot).id).toBe(spill.id)
    const idle = backends.find((b) => b !== home && b !== spill) as BackendState
    expect(idle.inFlight).toBe(0)
    expect(picker.stats.requests).toBe(4)
    expect(picker.stats.affinityHits).toBe(2)
  })

  it('rejects bad knobs naming them', () => {
    expect(() => new PrefixAffinityPicker({ blockChars: 0 })).toThrow('option "prefixAffinity.blockChars"')
    expect(() => new PrefixAffinityPicker({ loadFactor: -1 })).toThrow('option "prefixAffinity.loadFactor"')
  })
})
