import type { Sample } from './prometheus-text.js'

/**
 * The LoRA adapters a vLLM server has requests for, from `vllm:lora_requests_info` (a gauge that
 * exists only when LoRA is enabled). vLLM writes one series per combination of its labels and
 * sets the value of the current one to the wall-clock time at every engine step, never removing
 * the others: the series with the highest value is the current state.
 */
export interface LoraReport {
  /** Adapters with requests in the running batch (`running_lora_adapters`). */
  readonly running: ReadonlySet<string>
  /** Adapters with requests waiting (`waiting_lora_adapters`). */
  readonly waiting: ReadonlySet<string>
  /** Both: the adapters the server holds a slot for, or is about to. */
  readonly adapters: ReadonlySet<string>
  /** Adapters one batch may hold (`--max-loras`); undefined when the label is missing or not a number. */
  readonly maxLora: number | undefined
}

export const LORA_METRIC = 'vllm:lora_requests_info'

/** The current series of the gauge as a LoraReport; undefined when the server exports none. Never throws. */
export function toLoraReport(samples: readonly Sample[], name: string): LoraReport | undefined {
  let current: Sample | undefined
  for (const s of samples) {
    if (s.name !== name || !Number.isFinite(s.value)) continue
    // On a tie the later series wins: prometheus_client writes series in the order they appeared.
    if (current === undefined || s.value >= current.value) current = s
  }
  if (current === undefined) return undefined
  const running = adapterSet(current.labels.running_lora_adapters)
  const waiting = adapterSet(current.labels.waiting_lora_adapters)
  const adapters = new Set(running)
  for (const a of waiting) adapters.add(a)
  const max = Number(current.labels.max_lora)
  const maxLora = current.labels.max_lora !== undefined && Number.isInteger(max) && max > 0 ? max : undefined
  return { running, waiting, adapters, maxLora }
}

/** `"a,b"` (vLLM joins names with `,`; other exporters write `", "`) as a set; `""` is none. */
function adapterSet(label: string | undefined): Set<string> {
  const set = new Set<string>()
  if (label === undefined || label === '') return set
  for (const part of label.split(',')) {
    const name = part.trim()
    if (name !== '') set.add(name)
  }
  return set
}
