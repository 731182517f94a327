/**
 * The Prometheus text exposition format (version 0.0.4, which vLLM, SGLang, TGI and llama.cpp all
 * serve), read only as far as load reports need: the samples of a few named metrics. Lines of other
 * metrics are skipped after comparing their name, so a vLLM answer with hundreds of histogram
 * buckets costs no allocation beyond its text.
 */

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export class PrometheusTextError extends Error {
  override readonly name = 'PrometheusTextError'
}

/** Label values longer than this or more labels than this on one sample mean the text is not metrics. */
const MAX_LABELS = 64

/**
 * Samples of the metrics named in `wanted`, in the order they appear. Comment lines (`# HELP`,
 * `# TYPE`) and blank lines are skipped; a malformed line of a wanted metric throws
 * PrometheusTextError, unless the metric is also in `optional` (a signal the scrape can do
 * without): then it is skipped, as is a malformed line of any other metric.
 */
export function parsePrometheusText(
  text: string,
  wanted: ReadonlySet<string>,
  optional?: ReadonlySet<string>,
): Sample[] {
  const samples: Sample[] = []
  let start = 0
  while (start < text.length) {
    let end = text.indexOf('\n', start)
    if (end < 0) end = text.length
    const line = start === end ? '' : text.slice(start, text.charCodeAt(end - 1) === 13 ? end - 1 : end)
    start = end + 1
    if (line === '' || line.charCodeAt(0) === 35 /* # */) continue
    const nameEnd = scanName(line)
    const name = line.slice(0, nameEnd)
    if (!wanted.has(name)) continue
    if (optional?.has(name)) {
      try {
        samples.push(parseSample(line, name, nameEnd))
      } catch {}
      continue
    }
    samples.push(parseSample(line, name, nameEnd))
  }
  return samples
}

function scanName(line: string): number {
  let i = 0
  while (i < line.length) {
    const c = line.charCodeAt(i)
    if (c === 123 /* { */ || c === 32 || c === 9) break
    i++
  }
  return i
}

function parseSample(line: string, name: string, nameEnd: number): Sample {
  let i = nameEnd
  const labels: Record<string, string> = {}
  if (line.charCodeAt(i) === 123) {
    i = parseLabels(line, i + 1, labels)
  }
  const rest = line.slice(i).trim()
  // A sample line is `value [timestamp]`; the timestamp (ms) is not needed.
  const space = rest.search(/[ \t]/)
  const raw = space < 0 ? rest : rest.slice(0, space)
  const value = parseValue(raw)
  if (value === undefined)
    throw new PrometheusTextError(`${name}: the value ${JSON.stringify(raw.slice(0, 40))} is not a number`)
  return { name, labels, value }
}

/** Reads `a="x",b="y"}` from `i` (just after `{`) into `labels`; returns the index after `}`. */
function parseLabels(line: string, i: number, labels: Record<string, string>): number {
  let count = 0
  for (;;) {
    while (line.charCodeAt(i) === 32 || line.charCodeAt(i) === 44 /* , */) i++
    if (line.charCodeAt(i) === 125 /* } */) return i + 1
    const eq = line.indexOf('=', i)
    if (eq < 0 || line.charCodeAt(eq + 1) !== 34 /* " */)
      throw new PrometheusTextError(`malformed labels in ${cut(line)}`)
    const key = line.slice(i, eq).trim()
    let value = ''
    let j = eq + 2
    for (;;) {
      if (j >= line.length) throw new PrometheusTextError(`unterminated label value in ${cut(line)}`)
      const c = line.charCodeAt(j)
      if (c === 34) break
      if (c === 92 /* \ */) {
        const next = line[j + 1]
        value += next === 'n' ? '\n' : (next ?? '')
        j += 2
      } else {
        value += line[j]
        j++
      }
    }
    if (++count > MAX_LABELS) throw new PrometheusTextError(`more than ${MAX_LABELS} labels in ${cut(line)}`)
    labels[key] = value
    i = j + 1
  }
}

function parseValue(raw: string): number | undefined {
  if (raw === 'NaN') return Number.NaN
  if (raw === '+Inf' || raw === 'Inf') return Number.POSITIVE_INFINITY
  if (raw === '-Inf') return Number.NEGATIVE_INFINITY
  if (raw === '') return undefined
  const value = Number(raw)
  return Number.isNaN(value) ? undefined : value
}

function cut(line: string): string {
  return JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line)
}
