/**
 * An HTTP tool from TOOLS_FILE: the validated arguments are POSTed as JSON to the tool's URL, and the
 * response body is what the model sees. The call is aborted with the context's signal (the response's
 * cancel or the tool's timeout), which closes the request's connection.
 */
import type { ServerTool } from './registry.js'
import type { HttpToolDefinition } from './tools-file.js'

/** Most of a response body the model sees, in bytes; the rest is not read. */
export const MAX_RESPONSE_BYTES = 64 * 1024
/** Most of an error response's body quoted in the thrown error's message, in characters. */
const MAX_ERROR_BODY_CHARS = 200

export function createHttpTool (definition: HttpToolDefinition): ServerTool {
  const { name, description, parameters, timeoutMs, url } = definition
  return {
    name,
    description,
    parameters,
    timeoutMs,
    async execute (args, context) {
      const headers = new Headers(definition.headers)
      headers.set('content-type', 'application/json')
      const response = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify(args),
        signal: context.signal,
        // A redirect would turn the POST into a GET, or carry the headers to another origin: it fails instead.
        redirect: 'manual'
      })
      const body = await readText(response, response.ok ? MAX_RESPONSE_BYTES : 4 * MAX_ERROR_BODY_CHARS)
      if (!response.ok) {
        const excerpt = body.replace(/\s+/g, ' ').trim().slice(0, MAX_ERROR_BODY_CHARS)
        throw new Error(`HTTP ${response.status} from ${name}${excerpt === '' ? '' : `: ${excerpt}`}`)
      }
      return body
    }
  }
}

/** Reads at most `maxBytes` of the body as UTF-8 (a character cut at the end is dropped) and releases the rest. */
async function readText (response: Response, maxBytes: number): Promise<string> {
  if (response.body === null) return ''
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  let bytes = 0
  try {
    while (bytes < maxBytes) {
      const { done, value } = await reader.read()
      if (done) return text + decoder.decode()
      const chunk = value.subarray(0, maxBytes - bytes)
      bytes += chunk.byteLength
      text += decoder.decode(chunk, { stream: true })
    }
    return text
  } finally {
    await reader.cancel().catch(() => {})
  }
}
