import {
  parsePrometheusText,
  type Sample,
} from '../../packages/core/src/balance/load-reports/prometheus-text.js'
import { send } from './http.js'

/** The samples of `names` from a gateway's `/metrics`, read through a real socket. */
export async function scrape(port: number, path: string, names: string[]): Promise<Sample[]> {
  const answer = await send(port, { path })
  if (answer.status !== 200) throw new Error(`${path} answered ${answer.status}: ${answer.text()}`)
  if (!String(answer.headers['content-type']).startsWith('text/plain'))
    throw new Error(`${path} answered ${answer.headers['content-type']}`)
  return parsePrometheusText(answer.text(), new Set(names))
}

/** The value of the one sample of `name` whose labels include `labels`; undefined when there is none. */
export function sampleValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]?.value
}
