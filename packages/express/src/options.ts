import type { RateLimitOptions } from '@tollgate/core'
import type { Request } from 'express'

export type TollgateExpressOptions = RateLimitOptions<Request>
