import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Cleanup, chat, closedPort, fake, send } from '../helpers/http.js'
import { configFile, startCli } from './support.js'

// Debian's chromium, installed by .ci/run from .ci/apt-packages (or `apt-get install -y chromium`).
const CHROMIUM = '/usr/bin/chromium'
// Written on every run, to look at: the test cannot judge the layout.
const SCREENSHOT = join(tmpdir(), 'tollgate-status-page.png')
const SCREENSHOT_50 = join(tmpdir(), 'tollgate-status-page-50.png')

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

let browser: BrowserContext
beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (see .ci/apt-packages)`)
  // A fresh profile directory per run; playwright passes it as --user-data-dir.
  browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'tollgate-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 700 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}, 30_000)
afterAll(() => browser?.close())

const HOSTILE_ID = '<img src=x onerror="window.__injected=1">'

/** A page on the gateway that records script errors and any request to another origin. */
async function open(port: number) {
  const page = await browser.newPage()
  cleanup.add(() => page.close(), null)
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(error.message))
  // The page must need nothing but the gateway: no CDN, no other origin.
  const foreign: string[] = []
  page.on('request', (request) => {
    if (!request.url().startsWith(`http://127.0.0.1:${port}/`)) foreign.push(request.url())
  })
  await page.goto(`http://127.0.0.1:${port}/gateway`)
  // Set once: still there later means the page updated in place, without a reload.
  await page.evaluate(() => {
    ;(globalThis as { __loadedOnce?: boolean }).__loadedOnce = true
  })
  return { page, errors, foreign }
}

const cellsOf = (page: Page, id: string) =>
  page.locator(`#backends tbody tr[data-backend="${id}"] td`).allTextContents()
const routeCells = (page: Page, route: string) =>
  page.locator(`#routes tbody tr[data-route="${route}"] td`).allTextContents()

describe('status page in Chromium', () => {
  it('shows rates, charts, TTFT, failing backends and route 429s, updating in place', async () => {
    const good = await fake(cleanup, { name: 'good', answerTokens: 4 })
    const other = await fake(cleanup, { name: 'other', answerTokens: 4 })
    const dead = `http://127.0.0.1:${await closedPort()}`
    const file = configFile(`listen: { host: 127.0.0.1, port: 0 }
defaultLimits: 200 per day, 50 per hour
applicationLimits: 1000 per hour
defaultTokens: 100000 per hour
strategy: round-robin
maxAttempts: 3
loadReports: { intervalMs: 200 }
health: { outlier: { consecutiveFailures: 1000 } }
backends:
  - { url: "${good.url}", id: good, models: [fake-model], zone: eu-1, maxConcurrency: 4, metrics: vllm }
  - { url: "${other.url}", id: '${HOSTILE_ID}', models: [fake-model], zone: eu-2 }
  - { url: "${dead}", id: dead, models: [fake-model], zone: eu-2, metrics: vllm }
routes:
  - { method: POST, path: /v1/chat/completions, forward: true, rateLimit: 5 per minute }
  - { method: GET, path: /v1/models, models: true, rateLimit: false }
status: { path: /gateway, refreshMs: 200 }
`)
    const { port } = await startCli(cleanup, file.path)
    const { page, errors, foreign } = await open(port)

    const rows = page.locator('#backends tbody tr')
    await expect.poll(() => rows.count()).toBe(3)
    expect(await page.locator('#backends tbody svg.spark').count()).toBe(3)
    expect(await page.locator('#routes tbody svg.spark').count()).toBe(2)
    expect((await cellsOf(page, 'good')).slice(0, 3)).toEqual(['good', 'healthy', 'eu-1'])
    expect((await cellsOf(page, 'good'))[4]).toBe('0')
    expect(await page.locator('#backends img').count()).toBe(0)
    expect(await page.evaluate(() => (globalThis as { __injected?: number }).__injected)).toBeUndefined()
    await expect
      .poll(() => page.locator('#config').textContent())
      .toMatch(/gateway\.yaml · strategy round-robin · loaded .* · 0 reloads/)
    await expect.poll(() => page.locator('#application-limits').textContent()).toMatch(/1000 per hour/)
    // The queue is said once, not on every backend's row.
    expect(await page.locator('#queue').textContent()).toBe('Queue: nobody waits for a backend.')
    expect(await page.locator('#zones tbody tr').count()).toBe(2)

    // Streams give TTFT; the dead backend's connections are refused (the request is retried elsewhere).
    for (let i = 0; i < 5; i++)
      expect((await send(port, { path: '/v1/chat/completions', body: chat({ stream: true }) })).status).toBe(
        200,
      )
    expect((await send(port, { path: '/v1/chat/completions', body: chat() })).status).toBe(429)

    const dead1 = page.locator('#backends tbody tr[data-backend="dead"]')
    await expect.poll(() => dead1.getAttribute('data-state'), { timeout: 5_000 }).toBe('down')
    // Not ejected (the threshold is high), yet the row says its requests and scrapes fail.
    expect((await cellsOf(page, 'dead'))[1]).toMatch(
      /^failingrequests failing \(\d+ in 30 s\): .*ECONNREFUSED.*; load report failing: /,
    )
    await expect.poll(async () => Number((await cellsOf(page, 'good'))[4])).toBeGreaterThan(0)
    await expect
      .poll(async () => (await cellsOf(page, 'good'))[6], { timeout: 5_000 })
      .toMatch(/^\d+ \/ \d+ ms$/)
    await expect.poll(async () => (await cellsOf(page, 'good'))[9], { timeout: 5_000 }).toMatch(/KV \d+ %/)
    expect(await page.locator('#backends tbody tr[data-backend="dead"] svg.spark polyline.err').count()).toBe(
      1,
    )
    await expect
      .poll(() => page.locator('#summary .card[data-card="backends up"] b').textContent())
      .toBe('2 / 3')

    // Per route: requests, the 429 from request limits, and the tokens charged.
    await expect.poll(async () => (await routeCells(page, 'POST /v1/chat/completions'))[5]).toBe('1')
    const route = await routeCells(page, 'POST /v1/chat/completions')
    expect(route.slice(0, 3)).toEqual(['POST', '/v1/chat/completions', '5 per minute'])
    expect(Number(route[4])).toBeGreaterThan(0)
    expect(Number(route[7]?.replaceAll(',', ''))).toBeGreaterThan(0)

    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    expect(await page.evaluate(() => (globalThis as { __loadedOnce?: boolean }).__loadedOnce)).toBe(true)
    expect(errors).toEqual([])
    expect(foreign).toEqual([])
  })

  it('counts token-budget 429s apart from request-limit ones', async () => {
    const good = await fake(cleanup, { name: 'good', answerTokens: 20 })
    const file = configFile(`listen: { host: 127.0.0.1, port: 0 }
defaultTokens: 10 per hour
fairness: {}
backends:
  - { url: "${good.url}", id: good, models: [fake-model] }
routes:
  - { method: POST, path: /v1/chat/completions, forward: true }
status: { path: /gateway, refreshMs: 200 }
`)
    const { port } = await startCli(cleanup, file.path)
    const answers: number[] = []
    for (let i = 0; i < 3; i++)
      answers.push((await send(port, { path: '/v1/chat/completions', body: chat({ max_tokens: 5 }) })).status)
    expect(answers).toContain(429)
    const { page } = await open(port)
    await expect.poll(async () => (await routeCells(page, 'POST /v1/chat/completions'))[6]).not.toBe('0')
    // Fairness is on: the tenants section is there, saying nobody has waited yet; no zones are set.
    expect(await page.locator('#tenants-section').isVisible()).toBe(true)
    expect(await page.locator('#tenants tbody').textContent()).toBe('no tenant has waited for a backend yet')
    expect(await page.locator('#zones-section').isVisible()).toBe(false)
    const route = await routeCells(page, 'POST /v1/chat/completions')
    expect(route[5]).toBe('0')
    expect(Number(route[6])).toBe(answers.filter((s) => s === 429).length)
  })

  it('stays usable with 50 backends: every row, one poll well under the refresh time', async () => {
    const server = await fake(cleanup, { name: 'shared', answerTokens: 1 })
    const backends = Array.from(
      { length: 50 },
      (_, i) => `  - { url: "${server.url}", id: b${i}, models: [fake-model], zone: z${i % 3} }`,
    ).join('\n')
    const file = configFile(`listen: { host: 127.0.0.1, port: 0 }
backends:
${backends}
routes:
  - { method: POST, path: /v1/chat/completions, forward: true }
status: { path: /gateway, refreshMs: 500 }
`)
    const { port } = await startCli(cleanup, file.path)
    for (let i = 0; i < 60; i++) await send(port, { path: '/v1/chat/completions', body: chat() })
    const json = await send(port, { path: '/gateway/status.json' })
    expect(json.json().backends).toHaveLength(50)
    const { page, errors } = await open(port)
    await expect.poll(() => page.locator('#backends tbody tr').count()).toBe(50)
    expect(await page.locator('#backends tbody svg.spark').count()).toBe(50)
    const before = await page.locator('#updated').textContent()
    await expect.poll(() => page.locator('#updated').textContent(), { timeout: 5_000 }).not.toBe(before)
    // Drawing 50 rows with their charts takes a small part of the refresh time.
    const drawMs = await page.evaluate(async () => {
      const started = performance.now()
      const response = await fetch('/gateway/status.json')
      await response.json()
      return performance.now() - started
    })
    expect(drawMs).toBeLessThan(500)
    await page.screenshot({ path: SCREENSHOT_50, fullPage: false })
    expect(errors).toEqual([])
  })
})
