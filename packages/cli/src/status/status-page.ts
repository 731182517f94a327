/**
 * The status page: one HTML document with its style and script inline (no CDN, nothing to build).
 * The script polls the JSON endpoint and writes every value with `textContent`, so a backend
 * name can never become markup.
 */
export function statusPage(jsonPath: string, refreshMs: number): string {
  // JSON.stringify alone would let "</script>" in a configured path end the script early.
  const source = JSON.stringify(jsonPath).replaceAll('<', '\\u003c')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tollgate status</title>
<style>
  :root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --muted: #6e7781; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
  #updated { color: var(--muted); }
  #error { color: var(--bad); font-weight: 600; }
  table { border-collapse: collapse; min-width: 40rem; }
  th, td { text-align: left; padding: .3rem .7rem; border-bottom: 1px solid #d0d7de; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .status { font-weight: 600; }
  .status-healthy { color: var(--ok); }
  .status-draining, .status-cooling-down { color: var(--warn); }
  .status-ejected, .status-unhealthy { color: var(--bad); }
  .bar { display: inline-block; width: 5rem; height: .6rem; background: #d0d7de; vertical-align: middle; margin-right: .4rem; }
  .bar > span { display: block; height: 100%; background: var(--ok); }
</style>
</head>
<body>
<h1>tollgate</h1>
<div><span id="updated">loading…</span> <span id="error"></span></div>
<h2>Backends</h2>
<table id="backends">
  <thead><tr><th>Backend</th><th>Status</th><th>Zone</th><th>Load</th><th>In flight</th><th>Queued</th><th>Latency</th><th>Requests</th><th>Errors</th><th>Last report</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Limits</h2>
<p id="application-limits"></p>
<table id="routes">
  <thead><tr><th>Method</th><th>Path</th><th>Limits</th></tr></thead>
  <tbody></tbody>
</table>
<script>
(() => {
  const source = ${source}
  const refreshMs = ${Number(refreshMs)}
  const cell = (row, text, className) => {
    const td = row.insertCell()
    td.textContent = text
    if (className) td.className = className
    return td
  }
  const ago = (at) => at === null ? '—' : Math.max(0, Math.round((Date.now() - at) / 1000)) + ' s ago'
  const renderBackends = (backends) => {
    const body = document.querySelector('#backends tbody')
    body.replaceChildren()
    for (const b of backends) {
      const row = body.insertRow()
      row.dataset.backend = b.id
      const name = cell(row, b.id)
      name.title = b.url
      cell(row, b.status, 'status status-' + b.status)
      cell(row, b.zone ?? '—')
      const load = cell(row, '', 'num')
      if (b.load === null) load.textContent = '—'
      else {
        const bar = document.createElement('span')
        bar.className = 'bar'
        const fill = document.createElement('span')
        fill.style.width = Math.min(100, Math.round(b.load * 100)) + '%'
        bar.append(fill)
        load.append(bar, Math.round(b.load * 100) + ' %')
      }
      cell(row, String(b.inFlight) + (b.maxConcurrency === null ? '' : ' / ' + b.maxConcurrency), 'num')
      cell(row, String(b.queued), 'num')
      cell(row, b.latencyMs + ' ms', 'num')
      cell(row, String(b.totalRequests), 'num')
      cell(row, String(b.totalErrors), 'num')
      cell(row, ago(b.lastReportAt))
    }
    if (backends.length === 0) cell(body.insertRow(), 'no backends').colSpan = 10
  }
  const renderRoutes = (doc) => {
    document.getElementById('application-limits').textContent =
      'Application limits (across all routes): ' + (doc.applicationLimits ?? 'none')
    const body = document.querySelector('#routes tbody')
    body.replaceChildren()
    for (const r of doc.routes) {
      const row = body.insertRow()
      cell(row, r.method)
      cell(row, r.path)
      cell(row, r.limits)
    }
  }
  const poll = async () => {
    try {
      const response = await fetch(source, { cache: 'no-store' })
      if (!response.ok) throw new Error('HTTP ' + response.status)
      const doc = await response.json()
      renderBackends(doc.backends)
      renderRoutes(doc)
      document.getElementById('updated').textContent = 'updated ' + new Date(doc.generatedAt).toLocaleTimeString()
      document.getElementById('error').textContent = ''
    } catch (error) {
      document.getElementById('error').textContent = 'gateway unreachable (' + error.message + ')'
    } finally {
      setTimeout(poll, refreshMs)
    }
  }
  poll()
})()
</script>
</body>
</html>
`
}
