/**
 * The protocol as an AsyncAPI 3.0 document, built from the same schemas the codec validates with:
 * client events are the TypeBox schemas of events.ts, verbatim. Server events have no runtime
 * schema in the gateway (they are typed from the `openai` package's TypeScript types), so their
 * payloads here are written out for this document, listing the fields the gateway sends; the map
 * below is typed over the ServerEvent union, so an event added there cannot be missing here.
 */
import { errorSpecs } from '../errors.js'
import { AudioEventTypes, ClientEventSchemas, ItemSchemas, ToolSchemas, TruncationSchema, type ServerEvent } from './events.js'

type Schema = Record<string, unknown>

export interface AsyncApiOptions {
  /** The gateway's version (package.json). */
  readonly version: string
  /** Whether the gateway serves TLS itself (`wss`). */
  readonly tls: boolean
}

/** A TypeBox schema as plain JSON Schema (TypeBox's symbol keys dropped). */
const plain = (schema: unknown): Schema => JSON.parse(JSON.stringify(schema)) as Schema
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` })
const str: Schema = { type: 'string' }
const int: Schema = { type: 'integer', minimum: 0 }

/** A server event's payload: `type`, `event_id` and `fields` (all required unless listed in `optional`). */
function payload (type: string, fields: Record<string, Schema>, optional: readonly string[] = []): Schema {
  return {
    type: 'object',
    required: ['event_id', 'type', ...Object.keys(fields).filter((name) => !optional.includes(name))],
    properties: { event_id: ref('EventId'), type: { type: 'string', const: type }, ...fields }
  }
}

interface EventDoc {
  readonly summary: string
  readonly payload: Schema
  /** `extension`: a Tokenwire addition; `mcp`: MCP tool events. */
  readonly tags?: readonly string[]
}

const inResponse = { response_id: str, item_id: str, output_index: int }

/** Every server event, by type: what it means and the fields the gateway sends. */
const serverEvents: { readonly [K in ServerEvent['type']]: EventDoc } = {
  'session.created': { summary: 'The session opened, attached to `session.conversation_id` (new, or the one asked for).', payload: payload('session.created', { session: ref('Session') }) },
  'session.updated': { summary: 'The effective session after a session.update; `gateway_notices` says what the gateway changed.', payload: payload('session.updated', { session: ref('Session') }) },
  'conversation.item.added': { summary: 'An item joined the conversation (from the client, a response, or a server-side tool).', payload: payload('conversation.item.added', { previous_item_id: { type: ['string', 'null'] }, item: ref('ServerItem') }, ['previous_item_id']) },
  'conversation.item.done': { summary: 'An item is final. On attach, the stored items are replayed as these, oldest first.', payload: payload('conversation.item.done', { previous_item_id: { type: ['string', 'null'] }, item: ref('ServerItem') }, ['previous_item_id']) },
  'conversation.item.deleted': { summary: 'An item was deleted (conversation.item.delete).', payload: payload('conversation.item.deleted', { item_id: str }) },
  'conversation.item.retrieved': { summary: 'The item asked for by conversation.item.retrieve.', payload: payload('conversation.item.retrieved', { item: ref('ServerItem') }) },
  'response.created': { summary: 'A response started. Every accepted response.create gets one, and always a response.done.', payload: payload('response.created', { response: ref('Response') }) },
  'response.output_item.added': { summary: 'A response output item (message, function_call or mcp_call) opened.', payload: payload('response.output_item.added', { response_id: str, output_index: int, item: ref('ServerItem') }) },
  'response.content_part.added': { summary: 'A text part of an assistant message opened.', payload: payload('response.content_part.added', { ...inResponse, content_index: int, part: ref('ContentPart') }) },
  'response.output_text.delta': { summary: 'Text of the reply, as the upstream streams it (one token or a few).', payload: payload('response.output_text.delta', { ...inResponse, content_index: int, delta: str }) },
  'response.output_text.done': { summary: 'The text part is complete (or ended early: see the item status).', payload: payload('response.output_text.done', { ...inResponse, content_index: int, text: str }) },
  'response.content_part.done': { summary: 'The content part is complete.', payload: payload('response.content_part.done', { ...inResponse, content_index: int, part: ref('ContentPart') }) },
  'response.function_call_arguments.delta': { summary: 'Arguments of a function call, streamed.', payload: payload('response.function_call_arguments.delta', { ...inResponse, call_id: str, delta: str }) },
  'response.function_call_arguments.done': { summary: 'A function call\'s arguments are complete. Client tools: answer with a function_call_output item and response.create; server-side tools run in the gateway.', payload: payload('response.function_call_arguments.done', { ...inResponse, call_id: str, name: str, arguments: str }) },
  'response.output_item.done': { summary: 'A response output item is final.', payload: payload('response.output_item.done', { response_id: str, output_index: int, item: ref('ServerItem') }) },
  'response.mcp_call_arguments.delta': { summary: 'Arguments of an MCP tool call, streamed.', payload: payload('response.mcp_call_arguments.delta', { ...inResponse, delta: str }), tags: ['mcp'] },
  'response.mcp_call_arguments.done': { summary: 'An MCP tool call\'s arguments are complete; the gateway runs the call inside the response.', payload: payload('response.mcp_call_arguments.done', { ...inResponse, arguments: str }), tags: ['mcp'] },
  'response.mcp_call.in_progress': { summary: 'The gateway is running the MCP tool call.', payload: payload('response.mcp_call.in_progress', { item_id: str, output_index: int }), tags: ['mcp'] },
  'response.mcp_call.completed': { summary: 'The MCP tool call returned; its output is on the item.', payload: payload('response.mcp_call.completed', { item_id: str, output_index: int }), tags: ['mcp'] },
  'response.mcp_call.failed': { summary: 'The MCP tool call failed; its error is on the item.', payload: payload('response.mcp_call.failed', { item_id: str, output_index: int }), tags: ['mcp'] },
  'mcp_list_tools.in_progress': { summary: 'Listing the tools of an MCP server named in session.update.', payload: payload('mcp_list_tools.in_progress', { item_id: str }), tags: ['mcp'] },
  'mcp_list_tools.completed': { summary: 'The MCP server\'s tools are listed on the mcp_list_tools item and offered to the model.', payload: payload('mcp_list_tools.completed', { item_id: str }), tags: ['mcp'] },
  'mcp_list_tools.failed': { summary: 'The MCP server could not be reached or listed (an error event `mcp_list_tools_failed` follows).', payload: payload('mcp_list_tools.failed', { item_id: str }), tags: ['mcp'] },
  'response.done': { summary: 'The response ended: completed, cancelled, failed (upstream errors, model_not_found, context_length_exceeded in status_details.error) or incomplete, with usage.', payload: payload('response.done', { response: ref('Response') }) },
  'rate_limits.updated': { summary: 'The per-key limits after a response was reserved or settled.', payload: payload('rate_limits.updated', { rate_limits: { type: 'array', items: ref('RateLimit') } }) },
  error: { summary: 'A client event was refused, or something failed outside a response. The socket stays open.', payload: payload('error', { error: ref('RealtimeError') }) }
}

/** Every server event type, in the order the document lists them. */
export const SERVER_EVENT_TYPES: readonly string[] = Object.keys(serverEvents)

/** What the gateway does with each client event (the codec's list, plus the audio events it refuses). */
const clientSummaries: { readonly [K in keyof typeof ClientEventSchemas]: string } = {
  'session.update': 'Changes the session. Text mode applies instructions, model, tools (function and mcp), tool_choice, max_output_tokens, parallel_tool_calls, truncation and the extension temperature; the rest is accepted and echoed.',
  'conversation.item.create': 'Adds an item: a message (input_text / input_image parts), a function_call or a function_call_output. `previous_item_id` places it (`"root"`: first).',
  'conversation.item.retrieve': 'Asks for one stored item (answered by conversation.item.retrieved).',
  'conversation.item.delete': 'Deletes an item from the conversation.',
  'response.create': 'Starts a response. `conversation: "none"` with `input` runs it out of band; `metadata.chain` runs a named prompt chain (extension).',
  'response.cancel': 'Cancels the active response (here or on any instance) and stops its upstream request.'
}

/** The AsyncAPI 3.0 document of the `/v1/realtime` WebSocket protocol. */
export function buildAsyncApi (options: AsyncApiOptions): Record<string, unknown> {
  const clientMessages: Record<string, Schema> = {}
  for (const [type, schema] of Object.entries(ClientEventSchemas)) {
    const summary = clientSummaries[type as keyof typeof ClientEventSchemas]
    clientMessages[type] = message(type, { summary, payload: clientPayload(type, plain(schema)) }, ['client'])
  }
  for (const type of AudioEventTypes) {
    clientMessages[type] = message(type, {
      summary: 'Realtime audio event: recognised and answered with an error event `audio_not_supported` (this gateway speaks the text modality only).',
      payload: { type: 'object', required: ['type'], properties: { type: { type: 'string', const: type }, event_id: { type: 'string', maxLength: 256 } } }
    }, ['client', 'unsupported'])
  }
  const serverMessages: Record<string, Schema> = {}
  for (const [type, doc] of Object.entries(serverEvents)) {
    serverMessages[type] = message(type, { summary: doc.summary, description: SERVER_PAYLOAD_NOTE, payload: doc.payload }, ['server', ...(doc.tags ?? [])])
  }

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Tokenwire realtime gateway',
      version: options.version,
      description: DESCRIPTION
    },
    defaultContentType: 'application/json',
    servers: {
      gateway: {
        host: '{host}',
        protocol: options.tls ? 'wss' : 'ws',
        description: 'A Tokenwire instance. Every instance serves every conversation (with Redis): connect to any.',
        variables: { host: { default: 'localhost:8080', description: 'Host and port of the gateway (PORT)' } },
        security: [{ $ref: '#/components/securitySchemes/bearer' }, { $ref: '#/components/securitySchemes/subprotocolKey' }]
      }
    },
    channels: {
      realtime: {
        address: '/v1/realtime',
        title: 'Realtime conversation',
        description: 'One WebSocket per client session (text frames, one JSON event each). The GA OpenAI Realtime API, text modality, with Tokenwire\'s additive extensions.',
        messages: { ...clientMessages, ...serverMessages },
        bindings: {
          ws: {
            method: 'GET',
            query: {
              type: 'object',
              properties: {
                model: { type: 'string', maxLength: 256, description: 'The model (routed by MODELS_FILE); absent: DEFAULT_MODEL. Realtime-only names are served by DEFAULT_MODEL.' },
                conversation_id: { type: 'string', maxLength: 128, description: 'Extension: attach to this stored conversation (same tenant), on any instance.' },
                resume_after: { type: 'string', maxLength: 128, description: 'Extension, with conversation_id: receive exactly the events after this event_id cursor, then the live tail.' }
              }
            },
            bindingVersion: '0.1.0'
          }
        }
      }
    },
    operations: {
      receiveClientEvents: operation('receive', 'Client events', 'What a client sends; the gateway receives them in order, one active response per conversation.', clientMessages),
      sendServerEvents: operation('send', 'Server events', 'What the gateway sends: every event has a unique event_id; conversation events carry cursors.', serverMessages)
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: '`Authorization: Bearer <gateway key>` at the upgrade (when GATEWAY_API_KEYS or a keys file is set).' },
        subprotocolKey: { type: 'httpApiKey', name: 'Sec-WebSocket-Protocol', in: 'header', description: 'The browser form: subprotocols `realtime` and `openai-insecure-api-key.<key>`.' }
      },
      schemas: componentSchemas()
    }
  }
}

const SERVER_PAYLOAD_NOTE = 'Payload written for this document from the `openai` package\'s Realtime types and what the gateway sends; the gateway has no runtime schema for server events, and further fields may appear.'

/** One message of the realtime channel, named and titled by its event type. */
function message (type: string, doc: { readonly summary: string, readonly description?: string, readonly payload: Schema }, tags: readonly string[]): Schema {
  return { name: type, title: type, summary: doc.summary, ...(doc.description === undefined ? {} : { description: doc.description }), contentType: 'application/json', payload: doc.payload, tags: tags.map((name) => ({ name })) }
}

/** An operation of the realtime channel over every message of `messages`. */
function operation (action: 'send' | 'receive', title: string, summary: string, messages: Record<string, Schema>): Schema {
  return {
    action,
    channel: { $ref: '#/channels/realtime' },
    title,
    summary,
    messages: Object.keys(messages).map((type) => ({ $ref: `#/channels/realtime/messages/${type}` }))
  }
}

/** Client payloads with the codec's per-type checks written in (items and tools are checked by type there). */
function clientPayload (type: string, schema: Schema): Schema {
  const properties = schema['properties'] as Record<string, Schema>
  if (type === 'conversation.item.create') properties['item'] = ref('ItemInput')
  if (type === 'session.update') {
    const session = properties['session'] as { properties: Record<string, Schema> }
    session.properties['tools'] = { type: 'array', maxItems: 128, items: ref('Tool') }
    session.properties['truncation'] = ref('Truncation')
  }
  if (type === 'response.create') {
    const response = properties['response'] as { properties: Record<string, Schema> }
    response.properties['input'] = { type: 'array', maxItems: 1000, items: ref('ItemInput') }
    const metadata = response.properties['metadata']
    if (metadata !== undefined) metadata['description'] = 'Up to 16 string pairs, echoed on the response. Extension: `chain` names a prompt chain (CHAINS_FILE) to run.'
  }
  return schema
}

function componentSchemas (): Record<string, Schema> {
  const status = { type: 'string', enum: ['completed', 'incomplete', 'in_progress'] }
  return {
    EventId: { type: 'string', description: 'Unique per event. For conversation events it is a cursor, `ev_<epoch>_<seq>`, usable as resume_after (extension); session-level events (session.*, error, replays, retrieved items) carry ids that are not cursors.' },
    ItemInput: { oneOf: Object.values(ItemSchemas).map(plain) },
    Tool: { oneOf: Object.values(ToolSchemas).map(plain) },
    Truncation: { ...plain(TruncationSchema), description: 'How a history over the model\'s context budget is cut before it goes upstream (the stored conversation never is): auto (oldest turns first), disabled (the response fails with context_length_exceeded), or retention_ratio (cut to that fraction, so the prefix stays stable across turns).' },
    ContentPart: { type: 'object', required: ['type'], properties: { type: { type: 'string' }, text: str } },
    ServerItem: {
      type: 'object',
      required: ['id', 'object', 'type', 'status'],
      description: 'A conversation item as stored: message, function_call, function_call_output, mcp_call or mcp_list_tools.',
      properties: {
        id: str,
        object: { type: 'string', const: 'realtime.item' },
        type: { type: 'string', enum: ['message', 'function_call', 'function_call_output', 'mcp_call', 'mcp_list_tools'] },
        status,
        role: { type: 'string', enum: ['user', 'system', 'assistant'] },
        content: { type: 'array', items: { type: 'object' } },
        call_id: str,
        name: str,
        arguments: str,
        output: str,
        server_label: str
      }
    },
    Response: {
      type: 'object',
      required: ['id', 'object', 'status'],
      properties: {
        id: str,
        object: { type: 'string', const: 'realtime.response' },
        status: { type: 'string', enum: ['in_progress', 'completed', 'cancelled', 'failed', 'incomplete'] },
        status_details: { type: 'object', description: '`{type, reason?, error?: {type, code, message}}`. Upstream failures end here, not as bare error events.' },
        output: { type: 'array', items: ref('ServerItem') },
        conversation_id: { type: 'string', description: 'Absent for out-of-band responses (conversation: "none", and intermediate chain steps).' },
        output_modalities: { type: 'array', items: { type: 'string', const: 'text' } },
        max_output_tokens: { anyOf: [{ type: 'integer' }, { type: 'string', const: 'inf' }] },
        metadata: { type: ['object', 'null'], description: 'As given in response.create. Extension: chain steps carry `{chain, step}`.' },
        usage: { type: 'object', description: 'From the upstream\'s usage chunk: total_tokens, input_tokens, output_tokens and their details.' }
      }
    },
    Session: {
      type: 'object',
      required: ['type', 'object', 'id', 'model', 'output_modalities', 'conversation_id'],
      properties: {
        type: { type: 'string', const: 'realtime' },
        object: { type: 'string', const: 'realtime.session' },
        id: str,
        model: str,
        output_modalities: { type: 'array', items: { type: 'string', const: 'text' } },
        instructions: str,
        tools: { type: 'array', items: { type: 'object' }, description: 'As set; MCP headers and authorization are never echoed.' },
        tool_choice: {},
        max_output_tokens: { anyOf: [{ type: 'integer' }, { type: 'string', const: 'inf' }] },
        truncation: ref('Truncation'),
        expires_at: { type: 'integer' },
        conversation_id: { type: 'string', description: 'Extension: the conversation this socket is attached to.' },
        temperature: { type: 'number', description: 'Extension: Chat Completions sampling temperature.' },
        gateway_notices: { type: 'array', items: str, description: 'Extension, in session.updated only: what the gateway changed in the requested config, and why.' }
      }
    },
    RateLimit: { type: 'object', required: ['name', 'limit', 'remaining', 'reset_seconds'], properties: { name: str, limit: int, remaining: int, reset_seconds: { type: 'number' } } },
    RealtimeError: {
      type: 'object',
      required: ['type', 'code', 'message'],
      properties: {
        type: { type: 'string', enum: [...new Set(Object.values(errorSpecs).map((spec) => spec.type))] },
        code: { type: 'string', description: 'A stable snake_case code (README "Errors").' },
        message: str,
        param: { type: ['string', 'null'] },
        event_id: { type: ['string', 'null'], description: 'The client event_id this answers, when there is one.' }
      }
    }
  }
}

const DESCRIPTION = [
  'The OpenAI Realtime API (GA), text modality, in front of any Chat Completions upstream. Existing Realtime clients work by changing their URL.',
  '',
  'Tokenwire extensions (additive; plain Realtime clients ignore them):',
  '- `session.conversation_id` names the conversation; connect with `?conversation_id=` to attach to it on any instance.',
  '- Every conversation event\'s `event_id` is a cursor: `?conversation_id=…&resume_after=<event_id>` delivers exactly the events after it, then the live tail.',
  '- Several sockets may attach to one conversation; all receive its events, and response.cancel from any stops the response wherever it runs.',
  '- Prompt chains: `response.create` with `metadata.chain` runs a named chain; each step is a response with `metadata: {chain, step}`.',
  '- MCP: `mcp` tools in session.update (and the gateway\'s own MCP_SERVERS) run in the gateway, as `mcp_call` items and `response.mcp_call.*` events.',
  '- `session.temperature` and `session.gateway_notices`; `truncation` is applied to the upstream request with the model\'s context budget.'
].join('\n')
