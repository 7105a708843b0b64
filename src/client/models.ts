/** The gateway's configured models, from `GET /v1/models` (the OpenAI list shape). */

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

/** `…/v1/models` next to a `…/v1/realtime` URL, over HTTP(S). */
export function modelsUrl (realtimeUrl: string): string {
  const url = new URL('models', realtimeUrl)
  url.protocol = url.protocol.replace(/^ws/, 'http')
  url.search = ''
  return url.toString()
}

/** `GET /v1/models` with the key, if any. */
async function requestModels (fetcher: typeof fetch, url: string, apiKey: string | undefined): Promise<Response> {
  return fetcher(modelsUrl(url), apiKey === undefined ? {} : { headers: { authorization: `Bearer ${apiKey}` } })
}

/**
 * Lists the gateway's models. `url` is the Realtime endpoint (or any URL on the gateway under
 * `/v1/`); `fetcher` defaults to `globalThis.fetch`.
 */
export async function listModels (url: string, options: { readonly apiKey?: string, readonly fetch?: typeof fetch } = {}): Promise<ModelInfo[]> {
  const response = await requestModels(options.fetch ?? globalThis.fetch, url, options.apiKey)
  if (!response.ok) throw new ModelsError(response.status)
  const body: unknown = await response.json()
  const data: unknown = typeof body === 'object' && body !== null ? Reflect.get(body, 'data') : undefined
  if (!Array.isArray(data)) return []
  return data.flatMap((entry: unknown): ModelInfo[] => {
    const id: unknown = typeof entry === 'object' && entry !== null ? Reflect.get(entry, 'id') : undefined
    return typeof id === 'string' ? [{ id }] : []
  })
}

/** Whether the gateway refuses the key: `GET /v1/models` answers 401 or 403. */
export async function isUnauthorized (fetcher: typeof fetch, url: string, apiKey: string | undefined): Promise<boolean> {
  const response = await requestModels(fetcher, url, apiKey)
  return response.status === 401 || response.status === 403
}
