export interface ServerShape {
  capacity: number
  ttftMs: number
  tptMs: number
  batchSlowdown: number
}
export function meanParetoTokens(min: number, alpha: number, max?: number): number
export function meanServiceMs(server: ServerShape, meanTokens: number): number
export function serverCapacity(server: ServerShape, meanTokens: number): number
export function poolCapacity(servers: readonly ServerShape[], meanTokens: number): number
