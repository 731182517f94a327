import type { GatewayOptions, ObserveOptions, RateLimitOptions } from '@tollgate/core'
import type { Request } from 'express'

export interface TollgateExpressOptions
  extends RateLimitOptions<Request>,
    GatewayOptions<Request>,
    ObserveOptions {}
