import { STATUS_SCRIPT } from './status-script.js'

/**
 * The status page: one HTML document with its style and script inline (no CDN, nothing to build).
 * The script polls the JSON endpoint and writes every value with `textContent` (charts as SVG
 * elements), so a backend name can never become markup.
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
  :root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --muted: #6e7781;
    --line: #d0d7de; --chart: #0969da; --panel: rgba(127,127,127,.07); }
  body { font: 13px/1.4 system-ui, sans-serif; margin: 1.2rem 1.5rem; }
  header { display: flex; flex-wrap: wrap; align-items: baseline; gap: .4rem 1.2rem; }
  h1 { font-size: 1.3rem; margin: 0; }
  h2 { font-size: 1.02rem; margin: 1.3rem 0 .4rem; }
  .muted, #updated { color: var(--muted); }
  #error { color: var(--bad); font-weight: 600; }
  #summary { display: flex; flex-wrap: wrap; gap: .6rem; margin: .8rem 0 .2rem; }
  .card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .35rem .8rem; min-width: 7.5rem; }
  .card b { display: block; font-size: 1.15rem; font-variant-numeric: tabular-nums; }
  .card.bad b { color: var(--bad); }
  table { border-collapse: collapse; }
  th, td { text-align: left; padding: .25rem .55rem; border-bottom: 1px solid var(--line); vertical-align: middle; }
  th { font-weight: 600; white-space: nowrap; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  td.name { max-width: 14rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .scroll { overflow-x: auto; }
  .badge { display: inline-block; font-weight: 600; padding: 0 .45rem; border-radius: 1rem; border: 1px solid currentColor; white-space: nowrap; }
  .state-ok { color: var(--ok); } .state-degraded { color: var(--warn); } .state-down { color: var(--bad); }
  tr[data-state="down"] { background: rgba(207,34,46,.08); } tr[data-state="degraded"] { background: rgba(154,103,0,.07); }
  td.bad { color: var(--bad); font-weight: 600; }
  td.report { max-width: 10rem; }
  .problems { color: var(--bad); font-size: .9em; min-width: 15rem; max-width: 22rem; white-space: normal; }
  .bar { display: inline-block; width: 4rem; height: .55rem; background: var(--line); vertical-align: middle; margin-right: .35rem; border-radius: 2px; overflow: hidden; }
  .bar > span { display: block; height: 100%; background: var(--ok); }
  .bar.high > span { background: var(--warn); } .bar.full > span { background: var(--bad); }
  svg.spark { width: 120px; height: 26px; vertical-align: middle; display: block; }
  svg.spark .req { fill: none; stroke: var(--chart); stroke-width: 1.4; }
  svg.spark .area { fill: var(--chart); opacity: .12; stroke: none; }
  svg.spark .err { fill: none; stroke: var(--bad); stroke-width: 1.4; }
  .legend { font-size: .9em; }
  .legend i { display: inline-block; width: .8rem; height: 2px; vertical-align: middle; margin: 0 .25rem 0 .6rem; }
</style>
</head>
<body>
<header>
  <h1>tollgate</h1>
  <span id="config" class="muted"></span>
  <span id="updated">loading…</span>
  <span id="error" role="alert"></span>
</header>
<div id="summary"></div>
<h2>Backends <span class="legend muted">last 5 minutes:<i style="background:var(--chart)"></i>attempts<i style="background:var(--bad)"></i>failed</span></h2>
<p id="queue" class="muted"></p>
<div class="scroll">
<table id="backends">
  <thead><tr><th>Backend</th><th>State</th><th>Zone</th><th>Requests</th><th>req/s</th><th>err/s</th><th>TTFT p50 / p90</th><th>In flight</th><th>Latency</th><th>Load report</th><th>Total / failed</th></tr></thead>
  <tbody></tbody>
</table>
</div>
<section id="tenants-section" hidden>
<h2>Tenants (fair queue)</h2>
<table id="tenants"><thead><tr><th>Tenant</th><th>Weight</th><th>Waiting</th><th>Served</th><th>Share served</th></tr></thead><tbody></tbody></table>
</section>
<section id="zones-section" hidden>
<h2>Zones</h2>
<table id="zones"><thead><tr><th>Zone</th><th>Rank</th><th>Available</th><th>In flight</th><th>Requests</th><th>Spilled in</th></tr></thead><tbody></tbody></table>
</section>
<h2>Routes</h2>
<p id="application-limits" class="muted"></p>
<div class="scroll">
<table id="routes">
  <thead><tr><th>Method</th><th>Path</th><th>Limits</th><th>Requests</th><th>req/s</th><th>429 requests</th><th>429 tokens</th><th>Tokens</th><th>Tokens, last min</th></tr></thead>
  <tbody></tbody>
</table>
</div>
<script>
${STATUS_SCRIPT.replace('__SOURCE__', () => source).replace('__REFRESH_MS__', () => String(Number(refreshMs)))}
</script>
</body>
</html>
`
}
