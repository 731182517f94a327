/**
 * vLLM's KV-cache event batches, decoded into plain events. vLLM encodes with msgspec; its older
 * `array_like` structs give `[ts, events, dp_rank?]` and events as `["BlockStored", block_hashes,
 * parent_block_hash, token_ids, block_size, lora_id, medium, lora_name?, extra_keys?, …]`,
 * `["BlockRemoved", block_hashes, medium, …]`, `["AllBlocksCleared"]`; newer ones encode the same
 * structs as maps (`{ts, events, data_parallel_rank}`, events tagged by `type`). Both are read.
 */

/** A block hash as the engine sent it: an integer (a bigint when past 2^53 may be) or bytes, as a hex string. */
export type EngineBlockHash = number | bigint | string

export type KvEvent =
  | {
      type: 'BlockStored'
      blockHashes: EngineBlockHash[]
      parent: EngineBlockHash | null
      tokenIds: number[]
      blockSize: number
      /** Whether a LoRA adapter, multimodal input or salt entered the engine's hash: tokens alone do not name the block. */
      keyedBeyondTokens: boolean
      medium: string | null
    }
  | { type: 'BlockRemoved'; blockHashes: EngineBlockHash[]; medium: string | null }
  | { type: 'AllBlocksCleared' }

export class KvEventFormatError extends Error {}

/** The events of one decoded batch payload; events of an unknown type are skipped. */
export function eventsOfBatch(batch: unknown): KvEvent[] {
  let events: unknown
  if (Array.isArray(batch)) events = batch[1]
  else if (batch !== null && typeof batch === 'object') events = (batch as { events?: unknown }).events
  if (!Array.isArray(events)) throw new KvEventFormatError('a KV event batch without an events list')
  const out: KvEvent[] = []
  for (const raw of events) {
    const event = Array.isArray(raw) ? fromArray(raw) : fromMap(raw)
    if (event !== undefined) out.push(event)
  }
  return out
}

function fromArray(e: unknown[]): KvEvent | undefined {
  switch (e[0]) {
    case 'BlockStored':
      return stored(e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8])
    case 'BlockRemoved':
      return { type: 'BlockRemoved', blockHashes: hashes(e[1]), medium: medium(e[2]) }
    case 'AllBlocksCleared':
      return { type: 'AllBlocksCleared' }
    default:
      return undefined
  }
}

function fromMap(raw: unknown): KvEvent | undefined {
  if (raw === null || typeof raw !== 'object') return undefined
  const e = raw as Record<string, unknown>
  switch (e.type) {
    case 'BlockStored':
      return stored(
        e.block_hashes,
        e.parent_block_hash,
        e.token_ids,
        e.block_size,
        e.lora_id,
        e.medium,
        e.lora_name,
        e.extra_keys,
      )
    case 'BlockRemoved':
      return { type: 'BlockRemoved', blockHashes: hashes(e.block_hashes), medium: medium(e.medium) }
    case 'AllBlocksCleared':
      return { type: 'AllBlocksCleared' }
    default:
      return undefined
  }
}

function stored(
  blockHashes: unknown,
  parent: unknown,
  tokenIds: unknown,
  blockSize: unknown,
  loraId: unknown,
  med: unknown,
  loraName: unknown,
  extraKeys: unknown,
): KvEvent {
  if (!Array.isArray(tokenIds) || typeof blockSize !== 'number' || !(blockSize >= 1))
    throw new KvEventFormatError('a BlockStored event without token_ids and block_size')
  const keyedBeyondTokens =
    loraId != null || loraName != null || (Array.isArray(extraKeys) && extraKeys.some((k) => k != null))
  return {
    type: 'BlockStored',
    blockHashes: hashes(blockHashes),
    parent: parent == null ? null : blockHash(parent),
    tokenIds: tokenIds as number[],
    blockSize,
    keyedBeyondTokens,
    medium: medium(med),
  }
}

function hashes(value: unknown): EngineBlockHash[] {
  if (!Array.isArray(value)) throw new KvEventFormatError('an event without a block_hashes list')
  return value.map(blockHash)
}

function blockHash(value: unknown): EngineBlockHash {
  if (typeof value === 'number' || typeof value === 'bigint') return value
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')
  if (typeof value === 'string') return value
  throw new KvEventFormatError('a block hash that is neither an integer nor bytes')
}

function medium(value: unknown): string | null {
  return typeof value === 'string' ? value : null
}
