export interface Engine {
  /** The llama-server binary. */
  server: string
  /** The tiny random-weight GGUF model. */
  model: string
}

export const SOURCE_PACKAGE: { name: string; version: string; integrity: string }
export function findEngine(): Engine | null
export function ensureEngine(options?: { say?: (line: string) => void }): Promise<Engine>
