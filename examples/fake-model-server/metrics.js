/**
 * `/metrics` in the Prometheus text format, under the names each real engine uses, so a scraper
 * written against the fake reads the real servers too. Names, help texts, labels and number
 * formatting follow each engine's own exporter:
 *
 * - `vllm`: vLLM's V1 engine (`vllm/v1/metrics/loggers.py`, prometheus_client): labels
 *   `engine="0",model_name=…`, counters with `_total`, floats written `1.0`. With LoRA adapters,
 *   `vllm:lora_requests_info` (see lora-slots.js), its labels in the sorted order of
 *   prometheus_client's multiprocess mode and its timestamps written as Go would (`1.7e+09`).
 * - `vllm-v0`: vLLM before V1 (`vllm/engine/metrics.py`): `vllm:gpu_cache_usage_perc` and the
 *   prefix-cache hit rate as a gauge, label `model_name` only.
 * - `sglang`: `python/sglang/srt/metrics/collector.py`: `sglang:num_running_reqs`,
 *   `sglang:num_queue_reqs`, `sglang:token_usage` (KV tokens in use ÷ pool), label `model_name`.
 * - `tgi`: text-generation-inference's router (Rust `metrics` crate): no labels, integers, and no KV
 *   usage at all, only `tgi_batch_current_max_tokens`.
 * - `llamacpp`: llama.cpp's `llama-server --metrics` (`tools/server/server-task.cpp`,
 *   `to_metrics`): the same 15 series, counters then gauges, no labels, C++ stream numbers (`0`,
 *   `0.5`). There is no KV-cache usage among them. The fake fills the queue, batch and token
 *   counters and writes 0 for what it does not model (seconds, decode calls, speculative decoding).
 */

export const METRICS_FORMATS = ['vllm', 'vllm-v0', 'sglang', 'tgi', 'llamacpp', 'none']

/**
 * @typedef {{
 *   model: string, waiting: number, running: number, kvUsage: number, kvTokens: number,
 *   batchTokens: number, prefixQueries: number, prefixHits: number, promptTokens: number,
 *   generationTokens: number, succeeded: number, requests: number,
 *   lora?: { maxLora: number, series: { running: string, waiting: string, at: number }[] },
 * }} EngineState
 */

/** prometheus_client writes every value as a Python float: `0.0`, `3.0`, `0.25`. @param {number} v */
const pyFloat = (v) => (Number.isInteger(v) ? v.toFixed(1) : String(v))

/**
 * prometheus_client's `floatToGoString`: Go switches to an exponent sooner than Python, from seven
 * digits before the point on. @param {number} v
 */
function goFloat(v) {
  const s = pyFloat(v)
  const dot = s.indexOf('.')
  if (!(v > 0 && dot > 6)) return s
  const mantissa = `${s[0]}.${s.slice(1, dot)}${s.slice(dot + 1)}`.replace(/[0.]+$/, '')
  return `${mantissa}e+0${dot - 1}`
}

/** @param {string} value */
const label = (value) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')

/**
 * @param {string} name @param {'gauge' | 'counter'} type @param {string | null} help
 * @param {string} labels `{…}` or '' @param {string} value
 */
function metric(name, type, help, labels, value) {
  const head = help === null ? '' : `# HELP ${name} ${help}\n`
  return `${head}# TYPE ${name} ${type}\n${name}${labels} ${value}\n`
}

/**
 * @param {string} format one of METRICS_FORMATS but `none`
 * @param {EngineState} s
 * @returns {string}
 */
export function renderMetrics(format, s) {
  const model = label(s.model)
  if (format === 'vllm') {
    const l = `{engine="0",model_name="${model}"}`
    return [
      metric(
        'vllm:num_requests_running',
        'gauge',
        'Number of requests in model execution batches.',
        l,
        pyFloat(s.running),
      ),
      metric(
        'vllm:num_requests_waiting',
        'gauge',
        'Number of requests waiting to be processed.',
        l,
        pyFloat(s.waiting),
      ),
      metric(
        'vllm:kv_cache_usage_perc',
        'gauge',
        'KV-cache usage. 1 means 100 percent usage.',
        l,
        pyFloat(s.kvUsage),
      ),
      metric(
        'vllm:prefix_cache_queries_total',
        'counter',
        'Prefix cache queries, in terms of number of queried tokens.',
        l,
        pyFloat(s.prefixQueries),
      ),
      metric(
        'vllm:prefix_cache_hits_total',
        'counter',
        'Prefix cache hits, in terms of number of cached tokens.',
        l,
        pyFloat(s.prefixHits),
      ),
      metric(
        'vllm:prompt_tokens_total',
        'counter',
        'Number of prefill tokens processed.',
        l,
        pyFloat(s.promptTokens),
      ),
      metric(
        'vllm:generation_tokens_total',
        'counter',
        'Number of generation tokens processed.',
        l,
        pyFloat(s.generationTokens),
      ),
      s.lora === undefined ? '' : loraInfo(s.lora),
    ].join('')
  }
  if (format === 'vllm-v0') {
    const l = `{model_name="${model}"}`
    const hitRate = s.prefixQueries > 0 ? s.prefixHits / s.prefixQueries : 0
    return [
      metric(
        'vllm:num_requests_running',
        'gauge',
        'Number of requests currently running on GPU.',
        l,
        pyFloat(s.running),
      ),
      metric('vllm:num_requests_swapped', 'gauge', 'Number of requests swapped to CPU.', l, '0.0'),
      metric(
        'vllm:num_requests_waiting',
        'gauge',
        'Number of requests waiting to be processed.',
        l,
        pyFloat(s.waiting),
      ),
      metric(
        'vllm:gpu_cache_usage_perc',
        'gauge',
        'GPU KV-cache usage. 1 means 100 percent usage.',
        l,
        pyFloat(s.kvUsage),
      ),
      metric(
        'vllm:cpu_cache_usage_perc',
        'gauge',
        'CPU KV-cache usage. 1 means 100 percent usage.',
        l,
        '0.0',
      ),
      metric(
        'vllm:gpu_prefix_cache_hit_rate',
        'gauge',
        'GPU prefix cache block hit rate.',
        l,
        pyFloat(hitRate),
      ),
      metric(
        'vllm:prompt_tokens_total',
        'counter',
        'Number of prefill tokens processed.',
        l,
        pyFloat(s.promptTokens),
      ),
      metric(
        'vllm:generation_tokens_total',
        'counter',
        'Number of generation tokens processed.',
        l,
        pyFloat(s.generationTokens),
      ),
    ].join('')
  }
  if (format === 'sglang') {
    const l = `{model_name="${model}"}`
    const hitRate = s.prefixQueries > 0 ? s.prefixHits / s.prefixQueries : 0
    return [
      metric('sglang:num_running_reqs', 'gauge', 'The number of running requests.', l, pyFloat(s.running)),
      metric(
        'sglang:num_queue_reqs',
        'gauge',
        'The number of requests in the waiting queue.',
        l,
        pyFloat(s.waiting),
      ),
      metric('sglang:token_usage', 'gauge', 'The token usage.', l, pyFloat(s.kvUsage)),
      metric('sglang:cache_hit_rate', 'gauge', 'The prefix cache hit rate.', l, pyFloat(hitRate)),
      metric(
        'sglang:prompt_tokens_total',
        'counter',
        'Number of prefill tokens processed.',
        l,
        pyFloat(s.promptTokens),
      ),
      metric(
        'sglang:generation_tokens_total',
        'counter',
        'Number of generation tokens processed.',
        l,
        pyFloat(s.generationTokens),
      ),
    ].join('')
  }
  if (format === 'tgi') {
    return [
      metric('tgi_queue_size', 'gauge', null, '', String(s.waiting)),
      metric('tgi_batch_current_size', 'gauge', null, '', String(s.running)),
      metric('tgi_batch_current_max_tokens', 'gauge', null, '', String(s.batchTokens)),
      metric('tgi_request_count', 'counter', null, '', String(s.requests)),
      metric('tgi_request_success', 'counter', null, '', String(s.succeeded)),
    ].join('')
  }
  if (format === 'llamacpp') {
    /** @type {[string, string, number][]} */
    const counters = [
      [
        'prompt_tokens_total',
        'Number of prompt tokens processed, excluding cached tokens',
        s.promptTokens - s.prefixHits,
      ],
      ['prompt_tokens_cached_total', 'Number of prompt tokens reused from the cache', s.prefixHits],
      ['prompt_seconds_total', 'Total time spent processing prompts', 0],
      ['tokens_predicted_total', 'Number of generation tokens processed', s.generationTokens],
      ['tokens_predicted_seconds_total', 'Total time spent generating tokens', 0],
      [
        'n_decode_total',
        'Total number of llama_decode() calls, excluding speculative decoding and multimodal decoding',
        0,
      ],
      ['n_tokens_max', 'Largest observed sequence length (prompt + generation)', 0],
      ['spec_decode_num_draft_tokens_total', 'Speculative: Total draft tokens generated', 0],
      [
        'spec_decode_num_accepted_tokens_total',
        'Speculative: Total draft tokens accepted by the target model',
        0,
      ],
      ['spec_decode_num_drafts_total', 'Speculative: Total speculative decoding verification steps', 0],
    ]
    /** @type {[string, string, number][]} */
    const gauges = [
      ['prompt_tokens_seconds', 'Average prompt throughput in tokens/s', 0],
      ['predicted_tokens_seconds', 'Average generation throughput in tokens/s', 0],
      ['requests_processing', 'Number of requests processing', s.running],
      ['requests_deferred', 'Number of requests deferred', s.waiting],
      ['n_busy_slots_per_decode', 'Average number of busy slots per llama_decode() call', 0],
    ]
    const write = (/** @type {'counter' | 'gauge'} */ type) => (/** @type {[string, string, number]} */ m) =>
      metric(`llamacpp:${m[0]}`, type, m[1], '', String(m[2]))
    return [...counters.map(write('counter')), ...gauges.map(write('gauge'))].join('')
  }
  throw new TypeError(`no metrics in format ${format}`)
}

/** @param {NonNullable<EngineState['lora']>} lora */
function loraInfo(lora) {
  const name = 'vllm:lora_requests_info'
  let text = `# HELP ${name} Running stats on lora requests.\n# TYPE ${name} gauge\n`
  for (const s of lora.series) {
    const labels = `max_lora="${lora.maxLora}",running_lora_adapters="${label(s.running)}",waiting_lora_adapters="${label(s.waiting)}"`
    text += `${name}{${labels}} ${goFloat(s.at)}\n`
  }
  return text
}
