/** The gateway's configured models, from `GET /v1/models` (the OpenAI list shape). */
import { modelsUrl } from './tokenwire-client.js'

export interface ModelInfo { readonly id: string, readonly owned_by?: string }

/** Thrown by {@link listModels} with the HTTP status (401: the key is missing or refused). */
export class ModelsError extends Error {
  readonly status: number
  constructor (status: number) {
    super(`GET /v1/models answered HTTP ${status}`)
    this.name = 'ModelsError'
    this.status = status
  }
}

/**
 * Lists the gateway's models. `url` is the Realtime endpoint (or any URL on the gateway under
 * `/v1/`); `fetcher` defaults to `globalThis.fetch`.
 */
export async function listModels (url: string, options: { readonly apiKey?: string, readonly fetch?: typeof fetch } = {}): Promise<ModelInfo[]> {
  const fetcher = options.fetch ?? globalThis.fetch
  const response = await fetcher(modelsUrl(url), options.apiKey === undefined ? {} : { headers: { authorization: `Bearer ${options.apiKey}` } })
  if (!response.ok) throw new ModelsError(response.status)
  const body: unknown = await response.json()
  const data: unknown = typeof body === 'object' && body !== null ? Reflect.get(body, 'data') : undefined
  if (!Array.isArray(data)) return []
  return data.flatMap((entry: unknown): ModelInfo[] => {
    const id: unknown = typeof entry === 'object' && entry !== null ? Reflect.get(entry, 'id') : undefined
    return typeof id === 'string' ? [{ id }] : []
  })
}
