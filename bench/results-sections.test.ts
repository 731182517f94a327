import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { mergeSections, parseSections, renderSections } from './lib/results-sections.js'

const RUN_SUITES = ['rate-limit', 'forward', 'latency', 'balance']

const FILE = `# tollgate benchmarks

header table

<!-- suite:rate-limit -->
## Rate-limit overhead

old rate-limit figures
<!-- /suite -->

<!-- suite:routing -->
## Routing on prefixes and reported load

routing figures
<!-- /suite -->
<!-- suite:tokens -->
## Token budgets

token figures, written by --append without a closing marker
<!-- suite:fairness -->
## Fair shares of full backends

fairness figures to the end of the file
`

describe('RESULTS.md sections', () => {
  it('reads every section, closed or not', () => {
    expect(parseSections(FILE)).toEqual([
      ['rate-limit', '## Rate-limit overhead\n\nold rate-limit figures'],
      ['routing', '## Routing on prefixes and reported load\n\nrouting figures'],
      ['tokens', '## Token budgets\n\ntoken figures, written by --append without a closing marker'],
      ['fairness', '## Fair shares of full backends\n\nfairness figures to the end of the file'],
    ])
  })

  it("replaces the suites run.js ran and keeps the sections other scripts wrote, in the file's order", () => {
    const fresh = { 'rate-limit': '## Rate-limit overhead\n\nnew', balance: '## Balancing quality\n\nnew' }
    const merged = mergeSections(parseSections(FILE), fresh, RUN_SUITES)
    expect(merged.map(([name]) => name)).toEqual(['rate-limit', 'routing', 'tokens', 'fairness', 'balance'])
    expect(merged[0]![1]).toBe('## Rate-limit overhead\n\nnew')
    expect(merged[2]![1]).toContain('token figures')
  })

  it('writes sections that read back the same', () => {
    const sections = parseSections(FILE)
    expect(parseSections(`# header\n\n${renderSections(sections)}\n`)).toEqual(sections)
  })

  it('a section appended again replaces the older one in its place', () => {
    const again = `${FILE}\n<!-- suite:tokens -->\n## Token budgets\n\nnewer token figures\n`
    const sections = parseSections(again)
    expect(sections.map(([name]) => name)).toEqual(['rate-limit', 'routing', 'tokens', 'fairness'])
    expect(sections[2]![1]).toBe('## Token budgets\n\nnewer token figures')
  })

  it('finds every section of the committed RESULTS.md', () => {
    const text = readFileSync(new URL('./RESULTS.md', import.meta.url), 'utf8')
    const names = parseSections(text).map(([name]) => name)
    const marked = [...text.matchAll(/<!-- suite:([a-z0-9-]+) -->/g)].map((m) => m[1])
    expect(names).toEqual([...new Set(marked)])
  })
})
