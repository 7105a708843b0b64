/**
 * The one error registry. Every failure the gateway reports has a `GW_ERR_*` code (matched by
 * callers on `err.code`), the stable snake_case `wire` code a client sees in a Realtime `error`
 * event or in `response.done.status_details.error.code`, and an HTTP status for HTTP paths.
 * README's error table is checked against this list by test/unit/errors.test.ts.
 */
import createError from '@fastify/error'

interface ErrorSpec {
  /** The `code` a WebSocket client sees. */
  readonly wire: string
  /** The Realtime error `type` the client sees. */
  readonly type: 'invalid_request_error' | 'server_error' | 'upstream_error'
  /** A printf-style message; `%s` placeholders are filled from the constructor's arguments. */
  readonly message: string
  readonly status: number
}

export const errorSpecs = {
  // Protocol: a client event could not be accepted. The socket stays open.
  GW_ERR_PROTOCOL_INVALID_JSON: { wire: 'invalid_json', type: 'invalid_request_error', message: 'The frame is not a JSON object: %s', status: 400 },
  GW_ERR_PROTOCOL_BINARY_FRAME: { wire: 'binary_not_supported', type: 'invalid_request_error', message: 'Binary frames are not supported; send JSON text frames', status: 400 },
  GW_ERR_PROTOCOL_UNKNOWN_EVENT: { wire: 'unknown_event_type', type: 'invalid_request_error', message: 'Unknown client event type %s', status: 400 },
  GW_ERR_PROTOCOL_INVALID_EVENT: { wire: 'invalid_value', type: 'invalid_request_error', message: 'Invalid %s event: %s', status: 400 },
  GW_ERR_PROTOCOL_AUDIO_UNSUPPORTED: { wire: 'audio_not_supported', type: 'invalid_request_error', message: '%s is an audio event; this gateway speaks the text modality only', status: 400 },
  GW_ERR_PROTOCOL_ITEM_TOO_LARGE: { wire: 'item_too_large', type: 'invalid_request_error', message: 'The item is %s bytes, over MAX_ITEM_BYTES (%s)', status: 413 },
  GW_ERR_PROTOCOL_IMAGE_TOO_LARGE: { wire: 'image_too_large', type: 'invalid_request_error', message: 'The image is %s bytes, over MAX_IMAGE_BYTES (%s)', status: 413 },
  GW_ERR_PROTOCOL_TOO_MANY_PENDING: { wire: 'too_many_pending_events', type: 'invalid_request_error', message: 'More than MAX_PENDING_EVENTS (%s) events are waiting to be handled; this one was dropped', status: 429 },
  // Rate limits (per key, across every instance). The socket stays open.
  GW_ERR_RATE_LIMITED: { wire: 'rate_limit_exceeded', type: 'invalid_request_error', message: 'Rate limit reached for %s: %s; try again in %s s', status: 429 },
  GW_ERR_RATE_LIMIT_TOO_LARGE: { wire: 'rate_limit_request_too_large', type: 'invalid_request_error', message: 'The request needs about %s tokens, more than RATE_LIMIT_TOKENS_PER_MIN (%s) allows at once', status: 429 },
  // Conversation state.
  GW_ERR_CONVERSATION_NOT_FOUND: { wire: 'conversation_not_found', type: 'invalid_request_error', message: 'Conversation %s was not found', status: 404 },
  GW_ERR_CONVERSATION_FULL: { wire: 'conversation_full', type: 'invalid_request_error', message: 'The conversation holds MAX_ITEMS_PER_CONVERSATION (%s) items; delete some first', status: 409 },
  GW_ERR_ITEM_NOT_FOUND: { wire: 'item_not_found', type: 'invalid_request_error', message: 'Item %s was not found in the conversation', status: 404 },
  GW_ERR_ITEM_DUPLICATE_ID: { wire: 'item_already_exists', type: 'invalid_request_error', message: 'An item with id %s already exists in the conversation', status: 409 },
  GW_ERR_TOOL_CALL_NOT_FOUND: { wire: 'tool_call_not_found', type: 'invalid_request_error', message: 'Tool call ID %s not found in conversation', status: 400 },
  GW_ERR_RESPONSE_ACTIVE: { wire: 'conversation_already_has_active_response', type: 'invalid_request_error', message: 'Conversation already has an active response in progress: %s', status: 409 },
  GW_ERR_RESPONSE_NOT_ACTIVE: { wire: 'response_cancel_not_active', type: 'invalid_request_error', message: 'Cancellation failed: no active response found', status: 400 },
  GW_ERR_RESPONSE_LIMIT: { wire: 'too_many_responses', type: 'invalid_request_error', message: 'This session already runs MAX_CONCURRENT_RESPONSES (%s) responses', status: 429 },
  GW_ERR_LEASE_LOST: { wire: 'lease_lost', type: 'server_error', message: 'The conversation lease was lost to another writer (fence %s)', status: 409 },
  GW_ERR_STORE_UNAVAILABLE: { wire: 'store_unavailable', type: 'server_error', message: 'The conversation store is unavailable', status: 503 },
  GW_ERR_RESUME_CURSOR_EXPIRED: { wire: 'resume_cursor_expired', type: 'invalid_request_error', message: 'resume_after %s is no longer in the event log; sending the conversation items instead', status: 410 },
  GW_ERR_MCP_UNAVAILABLE: { wire: 'mcp_list_tools_failed', type: 'server_error', message: 'Could not list the tools of MCP server %s', status: 502 },
  // Model routing and the context budget: reported in response.done (status failed), before any upstream request.
  GW_ERR_MODEL_NOT_FOUND: { wire: 'model_not_found', type: 'invalid_request_error', message: 'No upstream serves model %s (not in MODELS_FILE, and no default upstream)', status: 404 },
  GW_ERR_CONTEXT_LENGTH_EXCEEDED: { wire: 'context_length_exceeded', type: 'invalid_request_error', message: 'The request needs about %s input tokens; model %s takes %s (its context window minus the reply\'s reserve) and %s', status: 400 },
  // Upstream: reported in response.done (status failed) — the socket stays usable.
  GW_ERR_PROVIDER_RATE_LIMITED: { wire: 'upstream_rate_limited', type: 'upstream_error', message: 'The upstream model provider is rate limiting requests', status: 429 },
  GW_ERR_PROVIDER_UNAVAILABLE: { wire: 'upstream_unavailable', type: 'upstream_error', message: 'The upstream model provider failed or could not be reached', status: 502 },
  GW_ERR_PROVIDER_TIMEOUT: { wire: 'upstream_timeout', type: 'upstream_error', message: 'The upstream model provider went silent for longer than %s (%s ms)', status: 504 },
  GW_ERR_PROVIDER_REJECTED: { wire: 'upstream_rejected', type: 'upstream_error', message: 'The upstream model provider rejected the request (HTTP %s)', status: 502 },
  GW_ERR_PROVIDER_STREAM_INTERRUPTED: { wire: 'upstream_stream_interrupted', type: 'upstream_error', message: 'The upstream stream broke off before it finished', status: 502 },
  // Connection level (HTTP at upgrade).
  GW_ERR_AUTH_UNAUTHORIZED: { wire: 'invalid_api_key', type: 'invalid_request_error', message: 'Missing or unknown gateway API key', status: 401 },
  GW_ERR_AUTH_ORIGIN_NOT_ALLOWED: { wire: 'origin_not_allowed', type: 'invalid_request_error', message: 'Origin %s is not in ALLOWED_ORIGINS', status: 403 },
  GW_ERR_AUTH_EPHEMERAL_FORBIDDEN: { wire: 'ephemeral_key_not_allowed', type: 'invalid_request_error', message: 'An ephemeral key cannot %s', status: 403 },
  GW_ERR_SOCKET_LIMIT: { wire: 'too_many_sockets', type: 'invalid_request_error', message: 'This key already holds MAX_SOCKETS_PER_KEY (%s) sockets', status: 429 },
  GW_ERR_INVALID_REQUEST: { wire: 'invalid_request', type: 'invalid_request_error', message: 'Invalid request: %s', status: 400 },
  GW_ERR_SERVER_SHUTDOWN: { wire: 'server_shutting_down', type: 'server_error', message: 'The gateway instance shut down before the reply finished (SHUTDOWN_GRACE_MS, %s ms)', status: 503 },
  GW_ERR_SERVER_INTERNAL: { wire: 'server_error', type: 'server_error', message: 'The gateway failed to process the event', status: 500 }
} as const satisfies Record<string, ErrorSpec>

export type GatewayErrorCode = keyof typeof errorSpecs

/** An error raised by the gateway: `code` is the registry key, `wire` what the client sees. */
export interface GatewayError extends Error {
  readonly code: GatewayErrorCode
  readonly statusCode: number
  readonly wire: string
  readonly type: ErrorSpec['type']
  /** The path of the offending field, when one is known (Realtime `error.param`). */
  param?: string
  /** For upstream errors: how long the upstream asked us to wait before retrying. */
  retryAfterMs?: number
  /** For upstream errors: whether trying again may succeed. */
  retryable?: boolean
}

const constructors = new Map(
  Object.entries(errorSpecs).map(([code, spec]) => [code, createError(code, spec.message, spec.status)])
)

/**
 * Creates the registry error `code`, its message formatted with `args`.
 * Pass `{ cause }` (and `param`, `retryAfterMs`, `retryable`) as the last argument's fields via `details`.
 */
export function gatewayError (
  code: GatewayErrorCode,
  args: ReadonlyArray<string | number> = [],
  details: { cause?: unknown, param?: string, retryAfterMs?: number, retryable?: boolean } = {}
): GatewayError {
  const Ctor = constructors.get(code)
  if (Ctor === undefined) throw new TypeError(`unregistered error code ${code}`)
  const err = new Ctor(...args.map(String))
  const spec: ErrorSpec = errorSpecs[code]
  const { cause, ...rest } = details
  if (cause !== undefined) err.cause = cause
  return Object.assign(err, { code, statusCode: spec.status, wire: spec.wire, type: spec.type }, rest)
}

/**
 * The body of an HTTP API error reply, as OpenAI's REST API writes it: `param` (else the error's
 * own) names the offending field, null when none. (Refused WebSocket upgrades answer without `param`.)
 */
export function httpErrorBody (err: GatewayError, param: string | undefined = err.param): HttpErrorBody {
  return { error: { type: err.type, code: err.wire, message: err.message, param: param ?? null } }
}

export interface HttpErrorBody {
  readonly error: { readonly type: ErrorSpec['type'], readonly code: string, readonly message: string, readonly param: string | null }
}

/** True when `err` came from `gatewayError` (matched on `code`, never `instanceof`). */
export function isGatewayError (err: unknown): err is GatewayError {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' &&
    Object.hasOwn(errorSpecs, err.code)
}
