/**
 * Tags every upstream request a session's provider streams with the session's tenant, on the
 * `upstreamRequest` channel; usage and metrics join a response's usage to its tenant through the
 * request object (the same object a response run passes to its provider and names in
 * `responseDone`). Adds nothing per token: the provider's own stream is returned as is.
 */
import { upstreamRequest } from '../diagnostics.js'
import type { ModelProvider } from '../providers/provider.js'

/** `scope`: the gateway the session belongs to (its usage is recorded by that gateway only). */
export function withTenant (provider: ModelProvider, tenant: string, scope: object): ModelProvider {
  return {
    stream (request, signal) {
      if (upstreamRequest.hasSubscribers) upstreamRequest.publish({ request, tenant, scope })
      return provider.stream(request, signal)
    }
  }
}
