import { describe, expect, it } from 'vitest'
import { requestBlockKeys } from '../../src/balance/kv-events/block-keys.js'
import { eventsOfBatch, KvEventFormatError } from '../../src/balance/kv-events/event-decoder.js'
import { KvBlockIndex } from '../../src/balance/kv-events/kv-block-index.js'

const tokens = Array.from({ length: 40 }, (_, i) => 1000 + i)

function keysOf(t: number[], blockSize = 4): [Float64Array, number] {
  const keys = new Float64Array(64)
  return [keys, requestBlockKeys(t, blockSize, keys)]
}

function stored(hashes: unknown[], parent: unknown, tokenIds: number[], extra: unknown[] = [null, 'GPU']) {
  return eventsOfBatch([0, [['BlockStored', hashes, parent, tokenIds, 4, ...extra]]])
}

describe('KV block index', () => {
  it('matches a request by its own chained keys, whatever the engine hashes are', () => {
    const index = new KvBlockIndex(100)
    // Two events, the second chained to the first by the engine's hash only.
    for (const e of stored([11n, 12n], null, tokens.slice(0, 8))) index.apply(e)
    for (const e of stored([13n], 12n, tokens.slice(8, 12))) index.apply(e)
    const [keys, count] = keysOf(tokens)
    expect(count).toBe(10)
    expect(index.matchLength(keys, count)).toBe(3)
    // A request that differs in block 2 matches the first two blocks only.
    const [other, n] = keysOf([...tokens.slice(0, 8), 7, ...tokens.slice(9)])
    expect(index.matchLength(other, n)).toBe(2)
  })

  it('applies BlockRemoved by engine hash, in array and map encodings alike', () => {
    const index = new KvBlockIndex(100)
    for (const e of eventsOfBatch({
      ts: 1,
      events: [
        {
          type: 'BlockStored',
          block_hashes: [Buffer.from('aa', 'hex'), Buffer.from('bb', 'hex')],
          parent_block_hash: null,
          token_ids: tokens.slice(0, 8),
          block_size: 4,
          lora_id: null,
          medium: 'GPU',
        },
      ],
    }))
      index.apply(e)
    const [keys, count] = keysOf(tokens)
    expect(index.matchLength(keys, count)).toBe(2)
    for (const e of eventsOfBatch([1, [['BlockRemoved', [Buffer.from('bb', 'hex')], 'GPU']]])) index.apply(e)
    expect(index.matchLength(keys, count)).toBe(1)
    for (const e of eventsOfBatch([2, [['AllBlocksCleared']]])) index.apply(e)
    expect(index.size).toBe(0)
  })

  it('skips blocks it cannot name by tokens: unknown parent, LoRA, other media', () => {
    const index = new KvBlockIndex(100)
    for (const e of stored([21n], 999n, tokens.slice(4, 8))) index.apply(e)
    for (const e of stored([22n], null, tokens.slice(0, 4), [7, 'GPU'])) index.apply(e)
    for (const e of stored([23n], null, tokens.slice(0, 4), [null, 'CPU'])) index.apply(e)
    expect(index.size).toBe(0)
    expect(index.stats().skippedBlocks).toBe(2)
  })

  it('stays within maxBlocks, forgetting the oldest', () => {
    const index = new KvBlockIndex(3)
    for (const e of stored([1, 2, 3, 4, 5], null, tokens.slice(0, 20))) index.apply(e)
    expect(index.size).toBe(3)
    expect(index.stats().overflowBlocks).toBe(2)
  })

  it('refuses a batch that is not one', () => {
    expect(() => eventsOfBatch({ ts: 1 })).toThrow(KvEventFormatError)
    expect(() => eventsOfBatch([1, [['BlockStored', [1], null]]])).toThrow(KvEventFormatError)
  })
})
