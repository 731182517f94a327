export interface Summary {
  n: number
  min: number
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
}
export function sortedCopy(values: readonly number[]): number[]
export function percentileOfSorted(sorted: readonly number[], p: number): number
export function percentile(values: readonly number[], p: number): number
export function median(values: readonly number[]): number
export function mean(values: readonly number[]): number
export function ratio(a: number, b: number): number
export function pairedRatios(a: readonly number[], b: readonly number[]): number[]
export function medianRatio(a: readonly number[], b: readonly number[]): number
export function bootstrapInterval(
  statistic: (indices: number[]) => number,
  n: number,
  options?: { resamples?: number; level?: number; seed?: number },
): [number, number]
export function summarize(values: readonly number[]): Summary
