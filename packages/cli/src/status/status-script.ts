/**
 * The status page's script, as text: polls the status JSON every `__REFRESH_MS__` ms and
 * redraws. Every value goes in with `textContent` or an SVG attribute, never as markup.
 */
export const STATUS_SCRIPT = `(() => {
  const source = __SOURCE__
  const refreshMs = __REFRESH_MS__
  const SVG = 'http://www.w3.org/2000/svg'
  const $ = (id) => document.getElementById(id)
  const cell = (row, text, className) => {
    const td = row.insertCell()
    td.textContent = text
    if (className) td.className = className
    return td
  }
  const num = (n, digits = 1) => n === null || n === undefined ? '—' : (Math.round(n * 10 ** digits) / 10 ** digits).toLocaleString()
  const secondsAgo = (ms) => ms === null ? '—' : ms < 1000 ? 'just now' : Math.round(ms / 1000) + ' s ago'
  const percent = (x) => x === null ? '—' : Math.round(x * 100) + ' %'
  const clock = (at) => at === null ? '—' : new Date(at).toLocaleTimeString()

  // A small line chart of per-slot counts: the first series as a filled line, the second over it.
  const spark = (series, second, label) => {
    const w = 120, h = 26
    const svg = document.createElementNS(SVG, 'svg')
    svg.setAttribute('class', 'spark')
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h)
    svg.setAttribute('role', 'img')
    svg.setAttribute('aria-label', label)
    const max = Math.max(1, ...series, ...(second ?? []))
    const step = series.length > 1 ? w / (series.length - 1) : w
    const points = (values) => values.map((v, i) => (i * step).toFixed(1) + ',' + (h - 1 - (v / max) * (h - 3)).toFixed(1)).join(' ')
    const area = document.createElementNS(SVG, 'polygon')
    area.setAttribute('class', 'area')
    area.setAttribute('points', '0,' + h + ' ' + points(series) + ' ' + w + ',' + h)
    const line = document.createElementNS(SVG, 'polyline')
    line.setAttribute('class', 'req')
    line.setAttribute('points', points(series))
    svg.append(area, line)
    if (second && second.some((v) => v > 0)) {
      const err = document.createElementNS(SVG, 'polyline')
      err.setAttribute('class', 'err')
      err.setAttribute('points', points(second))
      svg.append(err)
    }
    const title = document.createElementNS(SVG, 'title')
    title.textContent = label
    svg.append(title)
    return svg
  }
  const card = (label, value, bad) => {
    const div = document.createElement('div')
    div.className = 'card' + (bad ? ' bad' : '')
    const b = document.createElement('b')
    b.textContent = value
    div.append(b, label)
    div.dataset.card = label
    return div
  }
  const capacity = (b) => {
    const td = document.createElement('td')
    td.className = 'num'
    if (b.load !== null) {
      const bar = document.createElement('span')
      bar.className = 'bar' + (b.load >= 1 ? ' full' : b.load >= 0.8 ? ' high' : '')
      const fill = document.createElement('span')
      fill.style.width = Math.min(100, Math.round(b.load * 100)) + '%'
      bar.append(fill)
      td.append(bar)
    }
    td.append(b.inFlight + (b.maxConcurrency === null ? '' : ' / ' + b.maxConcurrency))
    return td
  }
  const report = (r) => {
    if (r === null) return '—'
    const parts = []
    parts.push(r.lastError ? 'failing' : secondsAgo(r.ageMs))
    if (r.kvUsage !== null) parts.push('KV ' + percent(r.kvUsage))
    if (r.waiting !== null) parts.push(r.waiting + ' waiting')
    return parts.join(' · ')
  }

  const renderBackends = (doc) => {
    const body = document.querySelector('#backends tbody')
    const rows = []
    // Trouble first: at fifty backends the one that fails must not hide below the fold.
    const rank = { down: 0, degraded: 1, ok: 2 }
    const backends = doc.backends.slice().sort((x, y) => rank[x.state] - rank[y.state])
    for (const b of backends) {
      const row = document.createElement('tr')
      row.dataset.backend = b.id
      row.dataset.state = b.state
      const name = cell(row, b.id, 'name')
      name.title = b.url
      const state = row.insertCell()
      const badge = document.createElement('span')
      badge.className = 'badge state-' + b.state
      // The balancer's word, unless it still says healthy while requests or scrapes fail.
      badge.textContent = b.status !== 'healthy' || b.state === 'ok' ? b.status : b.state === 'down' ? 'failing' : 'degraded'
      state.append(badge)
      if (b.problems.length > 0) {
        const problems = document.createElement('div')
        problems.className = 'problems'
        problems.textContent = b.problems.join('; ')
        state.append(problems)
      }
      cell(row, b.zone ?? '—')
      row.insertCell().append(spark(b.requests, b.errors, b.id + ': attempts and failures per ' + doc.window.slotMs / 1000 + ' s'))
      cell(row, num(b.rate, 2), 'num')
      cell(row, num(b.errorRate, 2), 'num' + (b.errorRate > 0 ? ' bad' : ''))
      cell(row, b.ttft === null ? '—' : b.ttft.p50 + ' / ' + b.ttft.p90 + ' ms', 'num')
      row.append(capacity(b))
      cell(row, b.latencyMs + ' ms', 'num')
      const rep = cell(row, report(b.report), 'report' + (b.report && b.report.lastError ? ' bad' : ''))
      if (b.report && b.report.lastError) rep.title = b.report.lastError
      cell(row, b.totalRequests.toLocaleString() + ' / ' + b.totalErrors.toLocaleString(), 'num')
      rows.push(row)
    }
    if (rows.length === 0) {
      const row = document.createElement('tr')
      cell(row, 'no backends').colSpan = 11
      rows.push(row)
    }
    body.replaceChildren(...rows)
    const queue = doc.queue
    $('queue').textContent = queue === null ? '' : queue.waiting === 0
      ? 'Queue: nobody waits for a backend.'
      : 'Queue: ' + queue.waiting + ' request' + (queue.waiting === 1 ? '' : 's') + ' waiting for a backend with room.'
  }

  const renderSummary = (doc) => {
    const up = doc.backends.filter((b) => b.state !== 'down').length
    const rate = doc.backends.reduce((s, b) => s + b.rate, 0)
    const errors = doc.backends.reduce((s, b) => s + b.errorRate, 0)
    const limited = doc.routes.reduce((s, r) => s + r.limited + r.tokenLimited, 0)
    $('summary').replaceChildren(
      card('backends up', up + ' / ' + doc.backends.length, up < doc.backends.length),
      card('attempts/s (30 s)', num(rate, 2)),
      card('failed/s (30 s)', num(errors, 2), errors > 0),
      card('waiting', String(doc.queue ? doc.queue.waiting : 0), doc.queue !== null && doc.queue.waiting > 0),
      card('429s since start', limited.toLocaleString()),
    )
  }

  // A section shown while its feature is on (items not null), with a line when it has no rows yet.
  const renderTable = (id, sectionId, items, columns, empty) => {
    $(sectionId).hidden = items === null
    const body = document.querySelector('#' + id + ' tbody')
    const rows = (items ?? []).map((item) => {
      const row = document.createElement('tr')
      columns.forEach(([value, cls]) => cell(row, value(item), cls))
      return row
    })
    if (rows.length === 0) {
      const row = document.createElement('tr')
      cell(row, empty, 'muted').colSpan = columns.length
      rows.push(row)
    }
    body.replaceChildren(...rows)
  }

  const renderRoutes = (doc) => {
    $('application-limits').textContent =
      'Application limits (across all routes): ' + (doc.applicationLimits ?? 'none')
    const rows = doc.routes.map((r) => {
      const row = document.createElement('tr')
      row.dataset.route = r.method + ' ' + r.path
      cell(row, r.method)
      cell(row, r.path)
      cell(row, r.limits)
      row.insertCell().append(spark(r.requests, r.limitedSeries, r.method + ' ' + r.path + ': requests and 429s per ' + doc.window.slotMs / 1000 + ' s'))
      cell(row, num(r.rate, 2), 'num')
      cell(row, r.limited.toLocaleString(), 'num')
      cell(row, r.tokenLimited.toLocaleString(), 'num')
      cell(row, r.tokens.toLocaleString(), 'num')
      cell(row, r.tokensLastMinute.toLocaleString(), 'num')
      return row
    })
    document.querySelector('#routes tbody').replaceChildren(...rows)
  }

  const renderHeader = (doc) => {
    const g = doc.generation
    $('config').textContent = g.file + ' · strategy ' + doc.strategy + ' · loaded ' + clock(g.loadedAt) +
      ' · ' + g.reloads + ' reload' + (g.reloads === 1 ? '' : 's') +
      (g.refusedAt === null ? '' : ' · last reload refused at ' + clock(g.refusedAt))
    $('updated').textContent = 'updated ' + clock(doc.generatedAt)
  }

  const poll = async () => {
    try {
      const response = await fetch(source, { cache: 'no-store' })
      if (!response.ok) throw new Error('HTTP ' + response.status)
      const doc = await response.json()
      renderHeader(doc)
      renderSummary(doc)
      renderBackends(doc)
      renderTable('tenants', 'tenants-section', doc.fairness && doc.queue ? doc.queue.tenants : null, [
        [(t) => t.tenant, 'name'], [(t) => String(t.weight), 'num'], [(t) => String(t.waiting), 'num'],
        [(t) => t.served.toLocaleString(), 'num'], [(t) => percent(t.servedShare), 'num'],
      ], 'no tenant has waited for a backend yet')
      renderTable('zones', 'zones-section', doc.zones, [
        [(z) => z.zone ?? '(none)'], [(z) => String(z.rank), 'num'], [(z) => z.available + ' / ' + z.backends, 'num'],
        [(z) => String(z.inFlight), 'num'], [(z) => z.totalRequests.toLocaleString(), 'num'],
        [(z) => z.spilledRequests.toLocaleString(), 'num'],
      ], 'no zones')
      renderRoutes(doc)
      $('error').textContent = ''
    } catch (error) {
      $('error').textContent = 'gateway unreachable (' + error.message + ')'
    } finally {
      setTimeout(poll, refreshMs)
    }
  }
  poll()
})()`
