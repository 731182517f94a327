import { describe, expect, it } from 'vitest'
import { MissingMetricError, toLoadReport } from '../../../src/balance/load-reports/engines.js'

describe('toLoadReport', () => {
  it('sums queues and batches over vLLM engines and averages their KV usage', () => {
    const text = [
      'vllm:num_requests_running{engine="0",model_name="m"} 3.0',
      'vllm:num_requests_running{engine="1",model_name="m"} 5.0',
      'vllm:num_requests_waiting{engine="0",model_name="m"} 2.0',
      'vllm:num_requests_waiting{engine="1",model_name="m"} 0.0',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5',
      'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.25',
    ].join('\n')
    expect(toLoadReport('vllm', text, 42)).toEqual({ waiting: 2, running: 8, kvUsage: 0.375, at: 42 })
  })

  it("reads vLLM V0's gpu_cache_usage_perc when the current name is absent", () => {
    const text =
      'vllm:num_requests_running{model_name="m"} 1.0\nvllm:num_requests_waiting{model_name="m"} 4.0\n' +
      'vllm:gpu_cache_usage_perc{model_name="m"} 0.9\n'
    expect(toLoadReport('vllm', text, 0)).toMatchObject({ waiting: 4, running: 1, kvUsage: 0.9 })
  })

  it.each([
    [
      'sglang',
      'sglang:num_running_reqs{model_name="m"} 7.0\nsglang:num_queue_reqs{model_name="m"} 3.0\nsglang:token_usage{model_name="m"} 0.28\n',
      { waiting: 3, running: 7, kvUsage: 0.28 },
    ],
    [
      'tgi',
      'tgi_queue_size 5\ntgi_batch_current_size 8\ntgi_batch_current_max_tokens 2048\n',
      { waiting: 5, running: 8, kvUsage: undefined },
    ],
    [
      'llamacpp',
      'llamacpp:requests_processing 2\nllamacpp:requests_deferred 1\nllamacpp:kv_cache_usage_ratio 0.63\n',
      { waiting: 1, running: 2, kvUsage: 0.63 },
    ],
    // Newer llama.cpp builds dropped the KV ratio.
    ['llamacpp', 'llamacpp:requests_processing 0\nllamacpp:requests_deferred 0\n', { kvUsage: undefined }],
  ] as const)('maps %s names', (format, text, expected) => {
    expect(toLoadReport(format, text, 1)).toMatchObject(expected)
  })

  it('keeps KV usage within 0..1 and ignores NaN series', () => {
    const base = 'tgi_queue_size 0\n'
    const v = (kv: string) =>
      toLoadReport(
        'vllm',
        `vllm:num_requests_running 0\nvllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc ${kv}\n`,
        0,
      )
    expect(v('1.7').kvUsage).toBe(1)
    expect(v('-0.1').kvUsage).toBe(0)
    expect(v('NaN').kvUsage).toBeUndefined()
    expect(() => toLoadReport('tgi', base, 0)).toThrow(MissingMetricError)
  })

  it('fails when the queue or batch gauge is missing: the wrong format, or not that engine', () => {
    const sglang = 'sglang:num_running_reqs 1\nsglang:num_queue_reqs 0\n'
    expect(() => toLoadReport('vllm', sglang, 0)).toThrow(/no vllm:num_requests_waiting/)
    expect(() => toLoadReport('sglang', 'sglang:num_queue_reqs 0', 0)).toThrow(/no sglang:num_running_reqs/)
  })
})

describe('toLoadReport: LoRA adapters (vllm:lora_requests_info)', () => {
  const base =
    'vllm:num_requests_running{engine="0",model_name="m"} 1.0\nvllm:num_requests_waiting{engine="0",model_name="m"} 0.0\n'
  const info = (running: string, waiting: string, at: string, max = '2') =>
    `vllm:lora_requests_info{max_lora="${max}",running_lora_adapters="${running}",waiting_lora_adapters="${waiting}"} ${at}\n`

  it('reads the series with the latest timestamp, wherever it stands', () => {
    const text =
      base +
      '# HELP vllm:lora_requests_info Running stats on lora requests.\n# TYPE vllm:lora_requests_info gauge\n' +
      info('a', 'b', '1.7964274271e+09') +
      info('b,c', 'a', '1.7964274293e+09') +
      info('a,b', '', '1.7964274282e+09')
    const lora = toLoadReport('vllm', text, 0).lora
    expect(lora?.running).toEqual(new Set(['b', 'c']))
    expect(lora?.waiting).toEqual(new Set(['a']))
    expect(lora?.adapters).toEqual(new Set(['a', 'b', 'c']))
    expect(lora?.maxLora).toBe(2)
  })

  it('reads empty labels as no adapters, and trims names written with spaces', () => {
    expect(toLoadReport('vllm', base + info('', '', '1.7e+09', '4'), 0).lora).toEqual({
      running: new Set(),
      waiting: new Set(),
      adapters: new Set(),
      maxLora: 4,
    })
    const spaced = toLoadReport('vllm', base + info('adapter1, adapter2,', ' adapter3', '1.7e+09'), 0).lora
    expect(spaced?.adapters).toEqual(new Set(['adapter1', 'adapter2', 'adapter3']))
  })

  it('has none when the gauge is absent (LoRA off), and never fails the scrape over it', () => {
    expect(toLoadReport('vllm', base, 0).lora).toBeUndefined()
    const broken = `${base}vllm:lora_requests_info{max_lora="2",running_lora_adapters="a} 1.7e+09\n`
    expect(toLoadReport('vllm', broken, 0)).toMatchObject({ running: 1, lora: undefined })
    const garbage = `${base}vllm:lora_requests_info{running_lora_adapters="a"} soon\n${info('b', '', 'NaN')}`
    expect(toLoadReport('vllm', garbage, 0).lora).toBeUndefined()
    // Without a usable max_lora the adapters are still read; only the slot count is unknown.
    const noMax = `${base}vllm:lora_requests_info{running_lora_adapters="a",max_lora="many"} 1.7e+09\n`
    expect(toLoadReport('vllm', noMax, 0).lora).toMatchObject({
      adapters: new Set(['a']),
      maxLora: undefined,
    })
  })

  it('reads it for vLLM only', () => {
    const sglang = `sglang:num_running_reqs 1\nsglang:num_queue_reqs 0\n${info('a', '', '1.7e+09')}`
    expect(toLoadReport('sglang', sglang, 0).lora).toBeUndefined()
  })
})
