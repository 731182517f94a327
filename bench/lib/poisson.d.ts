export function seededRandom(seed: number): () => number
export function exponentialGap(random: () => number, meanMs: number): number
export function poissonSchedule(options: {
  ratePerSecond: number
  durationMs: number
  seed: number
}): number[]
