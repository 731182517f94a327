import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Service } from 'kubernetes-models/v1/Service'
import { describe, expect, it } from 'vitest'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import { checkConfigFile, LIVE_PATH, READY_PATH } from '../../packages/cli/src/index.js'

const root = new URL('../../deploy/', import.meta.url)
const manifestsDir = new URL('kubernetes/', root)

// biome-ignore lint/suspicious/noExplicitAny: manifests are checked by the schemas, not by types
type Manifest = any

/** Every object in deploy/kubernetes, with the file it came from. */
function manifests(): { file: string; object: Manifest }[] {
  const found: { file: string; object: Manifest }[] = []
  for (const file of readdirSync(manifestsDir).filter(
    (f) => f.endsWith('.yaml') && f !== 'kustomization.yaml',
  )) {
    for (const doc of parseAllDocuments(readFileSync(new URL(file, manifestsDir), 'utf8'))) {
      expect(doc.errors, file).toEqual([])
      found.push({ file, object: doc.toJS() })
    }
  }
  return found
}

// The Kubernetes OpenAPI schemas, compiled into validators by the kubernetes-models package.
const models: Record<string, new (data: Manifest) => { validate(): void }> = {
  'apps/v1 Deployment': Deployment,
  'v1 Service': Service,
  'v1 ConfigMap': ConfigMap,
  'autoscaling/v2 HorizontalPodAutoscaler': HorizontalPodAutoscaler,
}

const byKind = (kind: string, name: string) =>
  manifests().find((m) => m.object.kind === kind && m.object.metadata.name === name)?.object

describe('deploy/kubernetes', () => {
  it('holds only objects valid against the Kubernetes schemas', () => {
    const all = manifests()
    expect(all.map((m) => `${m.object.kind}/${m.object.metadata.name}`).sort()).toEqual([
      'ConfigMap/tollgate-config',
      'Deployment/tollgate',
      'Deployment/tollgate-redis',
      'HorizontalPodAutoscaler/tollgate',
      'Service/tollgate',
      'Service/tollgate-redis',
    ])
    for (const { file, object } of all) {
      const Model = models[`${object.apiVersion} ${object.kind}`]
      expect(Model, `${file}: ${object.apiVersion} ${object.kind}`).toBeDefined()
      expect(() => new Model!(object).validate(), file).not.toThrow()
    }
  })

  it('the schema check catches a broken manifest', () => {
    const broken = structuredClone(byKind('Deployment', 'tollgate'))
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'http'
    expect(() => new Deployment(broken).validate()).toThrow(/containerPort must be integer/)
  })

  it('lists every manifest in the kustomization', () => {
    const kustomization = parseYaml(readFileSync(new URL('kustomization.yaml', manifestsDir), 'utf8'))
    const files = readdirSync(manifestsDir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    expect([...kustomization.resources].sort()).toEqual(files.sort())
  })

  it('ships a gateway file the CLI accepts, probes it serves and a grace period past its shutdown', async () => {
    const configMap = byKind('ConfigMap', 'tollgate-config')
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-deploy-'))
    const file = join(dir, 'gateway.yaml')
    writeFileSync(file, configMap.data['gateway.yaml'])
    const config = await checkConfigFile(file, { POD_NAMESPACE: 'models' })
    expect(config.listen.host).toBe('0.0.0.0')
    expect(config.redis?.url).toBe('redis://tollgate-redis:6379')
    expect(config.dnsBackends).toHaveLength(1)
    // The model Service is looked up in the gateway's own namespace, not in `default`.
    expect(config.dnsBackends[0]?.entry.dns).toBe('vllm-headless.models.svc.cluster.local')

    const deployment = byKind('Deployment', 'tollgate')
    const pod = deployment.spec.template.spec
    const container = pod.containers[0]
    expect(container.readinessProbe.httpGet.path).toBe(READY_PATH)
    expect(container.livenessProbe.httpGet.path).toBe(LIVE_PATH)
    expect(container.ports[0].containerPort).toBe(config.listen.port)
    expect(container.args).toEqual(['serve', '--config', '/etc/tollgate/gateway.yaml'])
    const env = Object.fromEntries(container.env.map((e: Manifest) => [e.name, e]))
    expect(env.POD_NAMESPACE.valueFrom.fieldRef.fieldPath).toBe('metadata.namespace')
    // An exec sleep, not the `sleep` action (Kubernetes 1.30 and later only).
    expect(container.lifecycle.preStop.sleep).toBeUndefined()
    const [sleep, seconds] = container.lifecycle.preStop.exec.command
    expect(sleep).toBe('sleep')
    const preStopMs = Number(seconds) * 1000
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
      preStopMs + (config.plugin.shutdownTimeoutMs ?? 10_000),
    )
    expect(pod.volumes[0].configMap.name).toBe(configMap.metadata.name)

    const service = byKind('Service', 'tollgate')
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels)
    const hpa = byKind('HorizontalPodAutoscaler', 'tollgate')
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'tollgate' })
    expect(byKind('Service', 'tollgate-redis').spec.ports[0].port).toBe(6379)
  })

  it('has a multi-stage Dockerfile that runs production dependencies as a non-root user', async () => {
    const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8')
    const stages = dockerfile.match(/^FROM .+$/gm) ?? []
    expect(stages.length).toBeGreaterThanOrEqual(2)
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '))
    expect(runtime).toMatch(/^RUN npm ci --omit=dev/m)
    expect(runtime).toMatch(/^USER node$/m)
    expect(runtime).not.toMatch(/^RUN .*npm (install|ci)(?!.*--omit=dev)/m)
    expect(runtime).toMatch(/^ENTRYPOINT \["node", "packages\/cli\/bin\/tollgate\.js"\]$/m)
    // Only the CLI's dependency tree: express and the examples stay out of the image.
    expect(runtime).toMatch(/^RUN npm ci --omit=dev --workspace=@tollgate\/cli /m)
    for (const copy of runtime.match(/^COPY .*(express|examples).*$/gm) ?? [])
      expect(copy).toMatch(/^COPY (packages\/express|examples)\/package\.json /)
    // The health check asks the port the gateway listens on (TOLLGATE_PORT), not a fixed one.
    expect(runtime).toMatch(/^ENV TOLLGATE_PORT=8080$/m)
    const healthcheck = runtime.match(/^HEALTHCHECK .*$/m)?.[0] ?? ''
    expect(healthcheck).toContain('process.env.TOLLGATE_PORT')
    expect(healthcheck).not.toMatch(/:8080/)
    // The tag the build comment gives is the one the Deployment runs.
    const built = dockerfile.match(/docker build -f deploy\/Dockerfile -t (\S+) \./)?.[1]
    expect(built).toBe(byKind('Deployment', 'tollgate').spec.template.spec.containers[0].image)
    // The image's default file must be one the CLI accepts too.
    const config = await checkConfigFile(new URL('gateway.yaml', root).pathname, {})
    expect(config.listen.host).toBe('0.0.0.0')
  })
})
