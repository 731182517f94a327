/**
 * The shape of a gateway file, as JSON Schema for ajv. It checks the keys the CLI owns (`listen`,
 * `redis`, `routes`, `status`, backends written as DNS names) in full and the plugin's options by
 * type only: their ranges and rules are checked once, by the plugin itself, and its errors are
 * mapped back to the file (see load-config.ts). Plugin options that take a function (`keyGenerator`,
 * `onExceeded` …) have no YAML form; a gateway that needs them is written in code.
 */

const positiveInteger = { type: 'integer', minimum: 1 }
const nonNegativeNumber = { type: 'number', minimum: 0 }
const limitString = { type: 'string', minLength: 1, description: 'a limit string such as "60 per minute"' }
const nonEmptyString = { type: 'string', minLength: 1 }
const models = { type: 'array', minItems: 1, items: nonEmptyString }
const httpUrl = { type: 'string', pattern: '^https?://[^\\s]+$', description: 'an http:// or https:// URL' }
const path = { type: 'string', pattern: '^/', description: 'a path starting with /' }

const backendCommon = {
  weight: { type: 'number', exclusiveMinimum: 0 },
  models,
  zone: nonEmptyString,
  maxConcurrency: positiveInteger,
  headers: {
    type: 'object',
    additionalProperties: { type: 'string' },
    description: 'a mapping of header names to string values',
  },
  modelNames: {
    type: 'object',
    additionalProperties: nonEmptyString,
    description: 'a mapping of client model names to the names this backend expects',
  },
  forwardAuthorization: { type: 'boolean' },
  keepAliveAfterStreams: { type: 'boolean' },
  metrics: {
    oneOf: [
      { type: 'string', enum: ['vllm', 'sglang', 'tgi', 'llamacpp'] },
      {
        type: 'object',
        required: ['format'],
        additionalProperties: false,
        properties: { format: { type: 'string', enum: ['vllm', 'sglang', 'tgi', 'llamacpp'] }, path },
      },
    ],
    description: "the server's load report: vllm, sglang, tgi, llamacpp, or { format, path }",
  },
}

const zmqEndpoint = {
  type: 'string',
  pattern: '^tcp://[^\\s]+:\\d+$',
  description: "a ZMQ endpoint like 'tcp://10.0.0.5:5557'",
}

/** One engine's KV-event feed (precise-prefix): a URL backend only, as a DNS name stands for many engines. */
const urlBackend = {
  type: 'object',
  required: ['url'],
  additionalProperties: false,
  properties: {
    url: httpUrl,
    id: nonEmptyString,
    ...backendCommon,
    kvEvents: zmqEndpoint,
    kvEventsReplay: zmqEndpoint,
  },
}

/** A Kubernetes headless Service or any name with several A/AAAA records: one backend per address. */
const dnsBackend = {
  type: 'object',
  required: ['dns', 'port'],
  additionalProperties: false,
  properties: {
    dns: {
      type: 'string',
      pattern: '^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\\.?$',
      description: 'a DNS name such as model.default.svc.cluster.local',
    },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    scheme: { enum: ['http', 'https'] },
    basePath: path,
    refreshMs: { type: 'integer', minimum: 100 },
    ...backendCommon,
  },
}

const routeLimit = {
  description: 'a limit string, false, or { limits, scope, cost, methods, perMethod }',
  anyOf: [
    limitString,
    { const: false },
    {
      type: 'object',
      additionalProperties: false,
      properties: {
        limits: limitString,
        scope: nonEmptyString,
        cost: { type: 'integer', minimum: 0 },
        methods: { type: 'array', minItems: 1, items: { type: 'string' } },
        perMethod: { type: 'boolean' },
      },
    },
  ],
}

const method = {
  description: 'an HTTP method in capitals such as POST',
  enum: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
}

const route = {
  type: 'object',
  required: ['method', 'path'],
  additionalProperties: false,
  properties: {
    method: {
      description: 'an HTTP method such as POST, or a list of them',
      anyOf: [method, { type: 'array', minItems: 1, items: method }],
    },
    path,
    forward: {
      description: 'true, or { rewrite: { stripPrefix, addPrefix }, hashKey }',
      anyOf: [
        { const: true },
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            rewrite: {
              type: 'object',
              required: ['stripPrefix'],
              additionalProperties: false,
              properties: { stripPrefix: path, addPrefix: path },
            },
            hashKey: nonEmptyString,
          },
        },
      ],
    },
    models: { const: true },
    rateLimit: routeLimit,
  },
  description: 'a route with exactly one of forward: true or models: true',
  oneOf: [{ required: ['forward'] }, { required: ['models'] }],
}

export const configSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: {
        host: nonEmptyString,
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        trustProxy: {
          description: 'true, a number of proxy hops, or a list of proxy addresses',
          anyOf: [{ type: 'boolean' }, { type: 'integer', minimum: 0 }, nonEmptyString],
        },
      },
    },
    redis: {
      description: 'a redis:// or rediss:// URL, or { url, timeoutMs, onError }',
      anyOf: [
        { type: 'string', pattern: '^rediss?://' },
        {
          type: 'object',
          required: ['url'],
          additionalProperties: false,
          properties: {
            url: { type: 'string', pattern: '^rediss?://' },
            timeoutMs: positiveInteger,
            onError: { enum: ['insurance', 'allow', 'deny'] },
          },
        },
      ],
    },
    routingState: {
      description:
        'false, true (the top-level redis), a redis:// URL, or { redis, prefix, timeoutMs, leaseTtlMs, heartbeatMs, prefixTtlMs }',
      anyOf: [
        { type: 'boolean' },
        { type: 'string', pattern: '^rediss?://' },
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            redis: { type: 'string', pattern: '^rediss?://' },
            prefix: nonEmptyString,
            timeoutMs: positiveInteger,
            leaseTtlMs: positiveInteger,
            heartbeatMs: positiveInteger,
            prefixTtlMs: positiveInteger,
          },
        },
      ],
    },
    routes: { type: 'array', items: route },
    status: {
      type: 'object',
      required: ['path'],
      additionalProperties: false,
      properties: { path, refreshMs: { type: 'integer', minimum: 200 } },
    },
    metrics: {
      type: 'object',
      required: ['path'],
      additionalProperties: false,
      properties: { path },
    },
    tracing: { type: 'boolean' },
    accessLog: { type: 'boolean' },
    backendHeader: {
      type: 'string',
      pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
      description: "a header name such as 'x-tollgate-backend'",
    },
    backends: {
      type: 'array',
      // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then/else, read by ajv
      items: { if: { type: 'object', required: ['dns'] }, then: dnsBackend, else: urlBackend },
    },
    defaultLimits: limitString,
    applicationLimits: limitString,
    keyPrefix: { type: 'string' },
    headers: { type: 'string' },
    hook: { enum: ['onRequest', 'preHandler'] },
    cost: { type: 'integer', minimum: 0 },
    allowList: { type: 'array', items: nonEmptyString },
    strategy: nonEmptyString,
    hashKey: nonEmptyString,
    consistentHash: { type: 'object' },
    prefixAffinity: { type: 'object' },
    loraAffinity: {
      description: 'true, false or { loadFactor }',
      anyOf: [{ type: 'boolean' }, { type: 'object' }],
    },
    precisePrefix: { type: 'object' },
    health: { type: 'object' },
    queue: { type: 'object' },
    retryBudget: { type: 'object' },
    latencyDecayMs: nonNegativeNumber,
    failurePenaltyMs: nonNegativeNumber,
    connectTimeoutMs: nonNegativeNumber,
    firstByteTimeoutMs: nonNegativeNumber,
    idleTimeoutMs: nonNegativeNumber,
    keepAliveTimeoutMs: nonNegativeNumber,
    connectionsPerBackend: positiveInteger,
    maxAttempts: positiveInteger,
    maxReplayBodyBytes: nonNegativeNumber,
    maxBodyBytes: nonNegativeNumber,
    shutdownTimeoutMs: nonNegativeNumber,
  },
} as const

/** Keys the CLI itself reads; every other key is a plugin option. */
export const CLI_KEYS = ['listen', 'redis', 'routingState', 'routes', 'status', 'metrics'] as const

/** Plugin options that only take a function or an object built in code. */
export const CODE_ONLY_OPTIONS = [
  'keyGenerator',
  'skip',
  'deductWhen',
  'rejectionBody',
  'onExceeded',
  'logger',
  'store',
  'onUnexpectedError',
  'onTokensSettled',
  'observers',
] as const
