import type { BackendState } from '../../src/balance/backend-state.js'
import { BackendRegistry } from '../../src/balance/registry.js'
import type { BackendConfig } from '../../src/balance/types.js'

/** Deterministic uniform source (mulberry32), so distribution tests never flake. */
export function seededRandom(seed = 42): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A clock tests move by hand. */
export function manualClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start
  return {
    now: () => t,
    advance: (ms) => {
      t += ms
    },
  }
}

/** Backends named A, B, C… on distinct ports, with the given weights. */
export function backendConfigs(weights: number[], extra: Partial<BackendConfig> = {}): BackendConfig[] {
  return weights.map((weight, i) => ({
    id: String.fromCharCode(65 + i),
    url: `http://127.0.0.1:${9000 + i}`,
    weight,
    ...extra,
  }))
}

export function registryOf(
  weights: number[],
  now?: () => number,
): { registry: BackendRegistry; backends: readonly BackendState[] } {
  const registry = new BackendRegistry(backendConfigs(weights), { now })
  return { registry, backends: registry.list() }
}

export function countPicks(picks: (BackendState | undefined)[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const p of picks) {
    const id = p?.id ?? 'none'
    counts[id] = (counts[id] ?? 0) + 1
  }
  return counts
}
