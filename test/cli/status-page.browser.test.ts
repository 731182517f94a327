import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BrowserContext, chromium } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Cleanup, chat, fake, send } from '../helpers/http.js'
import { configFile, startCli } from './support.js'

// Debian's chromium, installed by .ci/run from .ci/apt-packages (or `apt-get install -y chromium`).
const CHROMIUM = '/usr/bin/chromium'
// Written on every run, to look at: the test cannot judge the layout.
const SCREENSHOT = join(tmpdir(), 'tollgate-status-page.png')

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
    viewport: { width: 1200, height: 520 },
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

describe('status page in Chromium', () => {
  it('renders backends and limits, escapes backend names, and shows an ejection live', async () => {
    const good = await fake(cleanup, { name: 'good', answerTokens: 1 })
    const bad = await fake(cleanup, { name: 'bad', answerTokens: 1 })
    const file = configFile(`listen: { host: 127.0.0.1, port: 0 }
defaultLimits: 200 per day, 50 per hour
applicationLimits: 1000 per hour
strategy: round-robin
maxAttempts: 1
health: { outlier: { consecutiveFailures: 1, baseEjectionMs: 60000 } }
backends:
  - { url: "${good.url}", id: good, models: [fake-model], zone: eu-1, maxConcurrency: 4 }
  - { url: "${bad.url}", id: '${HOSTILE_ID}', models: [fake-model], zone: eu-2 }
routes:
  - { method: POST, path: /v1/chat/completions, forward: true, rateLimit: 60 per minute }
  - { method: GET, path: /v1/models, models: true, rateLimit: false }
status: { path: /gateway, refreshMs: 200 }
`)
    const { port } = await startCli(cleanup, file.path)
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
    const rows = page.locator('#backends tbody tr')
    await expect.poll(() => rows.count()).toBe(2)
    const cells = (index: number) => rows.nth(index).locator('td').allTextContents()
    expect(await cells(0)).toEqual(['good', 'healthy', 'eu-1', '0 %', '0 / 4', '0', '0 ms', '0', '0', '—'])
    expect((await cells(1)).slice(0, 3)).toEqual([HOSTILE_ID, 'healthy', 'eu-2'])
    expect(await page.locator('#backends img').count()).toBe(0)
    expect(await page.evaluate(() => (globalThis as { __injected?: number }).__injected)).toBeUndefined()
    expect(await page.locator('#routes tbody tr').allTextContents()).toEqual([
      'POST/v1/chat/completions60 per minute',
      'GET/v1/modelsnone',
    ])
    await expect.poll(() => page.locator('#application-limits').textContent()).toMatch(/1000 per hour/)

    bad.setFailureMode('error-500')
    const ejected = async () => (await cells(1))[1] === 'ejected'
    for (let i = 0; i < 4; i++) await send(port, { path: '/v1/chat/completions', body: chat() })
    const status = (await send(port, { path: '/gateway/status.json' })).json()
    expect(status.backends[1].status).toBe('ejected')
    await expect.poll(ejected, { timeout: 5_000 }).toBe(true)
    expect(Number((await cells(0))[7])).toBeGreaterThan(0)

    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    expect(errors).toEqual([])
    expect(foreign).toEqual([])
  })
})
