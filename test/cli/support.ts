import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DnsResolverLike } from '@tollgate/core'
import { pino } from 'pino'
import { type RunningGateway, serve } from '../../packages/cli/src/index.js'
import type { Cleanup } from '../helpers/http.js'

/** A gateway file in a directory of its own (the CLI watches the directory). */
export function configFile(text: string): { path: string; write(text: string): void } {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-cli-'))
  const path = join(dir, 'gateway.yaml')
  writeFileSync(path, text)
  return { path, write: (next) => writeFileSync(path, next) }
}

/** Log lines a gateway wrote, as parsed pino records. */
export interface Logs {
  records: { level: number; msg: string }[]
  messages(): string[]
}

export async function startCli(
  cleanup: Cleanup,
  path: string,
  options: { env?: NodeJS.ProcessEnv; watch?: boolean; dnsResolver?: DnsResolverLike } = {},
): Promise<{ gateway: RunningGateway; port: number; logs: Logs }> {
  const records: Logs['records'] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line)) })
  const gateway = await serve({
    configFile: path,
    port: 0,
    env: options.env ?? {},
    logger,
    watch: options.watch ?? false,
    dnsResolver: options.dnsResolver,
  })
  cleanup.add(() => gateway.close(), null)
  const port = Number(new URL(gateway.url).port)
  return { gateway, port, logs: { records, messages: () => records.map((r) => r.msg) } }
}

export function gatewayYaml(backends: { url: string; id: string; weight?: number }[], extra = ''): string {
  const list = backends
    .map(
      (b) =>
        `  - { url: "${b.url}", id: ${b.id}, models: [fake-model]${b.weight ? `, weight: ${b.weight}` : ''} }`,
    )
    .join('\n')
  return `listen: { host: 127.0.0.1, port: 0 }
backends:
${list}
routes:
  - { method: POST, path: /v1/chat/completions, forward: true }
  - { method: GET, path: /v1/models, models: true, rateLimit: false }
${extra}`
}
