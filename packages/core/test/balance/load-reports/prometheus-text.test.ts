import { describe, expect, it } from 'vitest'
import {
  PrometheusTextError,
  parsePrometheusText,
} from '../../../src/balance/load-reports/prometheus-text.js'

const wanted = (...names: string[]) => new Set(names)

describe('parsePrometheusText', () => {
  it('reads the samples of the wanted metrics with their labels, and skips everything else', () => {
    const text = [
      '# HELP vllm:num_requests_running Number of requests in model execution batches.',
      '# TYPE vllm:num_requests_running gauge',
      'vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0',
      'vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0',
      'vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="x"} 0.0',
      'not a metric line at all {{{',
      '',
      'vllm:kv_cache_usage_perc 0.25',
    ].join('\n')
    expect(
      parsePrometheusText(text, wanted('vllm:num_requests_running', 'vllm:kv_cache_usage_perc')),
    ).toEqual([
      {
        name: 'vllm:num_requests_running',
        labels: { engine: '0', model_name: 'meta-llama/Llama-3.1-8B-Instruct' },
        value: 3,
      },
      {
        name: 'vllm:num_requests_running',
        labels: { engine: '1', model_name: 'meta-llama/Llama-3.1-8B-Instruct' },
        value: 4,
      },
      { name: 'vllm:kv_cache_usage_perc', labels: {}, value: 0.25 },
    ])
  })

  it('unescapes label values, accepts CRLF, timestamps, exponents and the special values', () => {
    const text =
      'a{path="C:\\\\x",quote="say \\"hi\\"",nl="1\\n2",comma="a,b}"} 1.5e+03 1700000000000\r\n' +
      'a{} NaN\r\nb +Inf\nc -Inf\n'
    const samples = parsePrometheusText(text, wanted('a', 'b', 'c'))
    expect(samples[0]).toEqual({
      name: 'a',
      labels: { path: 'C:\\x', quote: 'say "hi"', nl: '1\n2', comma: 'a,b}' },
      value: 1500,
    })
    expect(samples.slice(1).map((s) => s.value)).toEqual([
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
    ])
  })

  it('throws on a malformed line of a wanted metric, naming it', () => {
    expect(() => parsePrometheusText('tgi_queue_size lots', wanted('tgi_queue_size'))).toThrow(
      PrometheusTextError,
    )
    expect(() => parsePrometheusText('tgi_queue_size lots', wanted('tgi_queue_size'))).toThrow(
      /tgi_queue_size/,
    )
    expect(() => parsePrometheusText('x{a="open} 1', wanted('x'))).toThrow(/unterminated/)
    expect(() => parsePrometheusText('x{a=1} 1', wanted('x'))).toThrow(/malformed labels/)
    expect(() => parsePrometheusText('x', wanted('x'))).toThrow(PrometheusTextError)
  })

  it('skips a malformed line of an optional metric and reads the rest', () => {
    const text = 'lora{a="open} 1\nlora{a="b"} 2\nx 3'
    expect(parsePrometheusText(text, wanted('x', 'lora'), wanted('lora'))).toEqual([
      { name: 'lora', labels: { a: 'b' }, value: 2 },
      { name: 'x', labels: {}, value: 3 },
    ])
    expect(() => parsePrometheusText('x lots', wanted('x', 'lora'), wanted('lora'))).toThrow(
      PrometheusTextError,
    )
  })

  it('finds nothing in text that is not metrics', () => {
    expect(
      parsePrometheusText('<html><body>Not found</body></html>', wanted('vllm:num_requests_waiting')),
    ).toEqual([])
  })
})
