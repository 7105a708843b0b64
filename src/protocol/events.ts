/**
 * The wire protocol: the GA OpenAI Realtime API, text modality. Client events are TypeBox
 * schemas (validated once, in codec.ts); server events are typed from the installed `openai`
 * package's realtime types, plus our additive extensions (`session.conversation_id`).
 */
import { Type, type Static, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox'
import type * as RT from 'openai/resources/realtime/realtime'

const Opt = <T extends TSchema>(schema: T) => Type.Optional(schema)
const Str = (max = 1_000_000) => Type.String({ maxLength: max })
/** A union of string literals, keeping each literal's type (TypeBox's map over a tuple loses it). */
function Literals<const L extends string[]> (...values: L): TUnion<Array<TLiteral<L[number]>>> {
  return Type.Union(values.map((v) => Type.Literal(v)))
}
const strict = { additionalProperties: false } as const

const EventId = Opt(Str(256))
/** Item ids travel inside stored JSON and log entries verbatim, so they stay in a safe alphabet. */
const ItemId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$' })
const ItemStatus = Literals('completed', 'incomplete', 'in_progress')
const MaxOutputTokens = Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000 }), Type.Literal('inf')])
const Modalities = Type.Array(Literals('text', 'audio'), { maxItems: 2 })

/** A content part of a message item; which types a role may use is checked in codec.ts. */
export const ContentPartSchema = Type.Object({
  type: Literals('input_text', 'input_image', 'output_text', 'input_audio', 'output_audio', 'text'),
  text: Opt(Str()),
  image_url: Opt(Str()),
  detail: Opt(Literals('auto', 'low', 'high')),
  audio: Opt(Str()),
  transcript: Opt(Str())
}, strict)

const ItemBase = {
  id: Opt(ItemId),
  object: Opt(Type.Literal('realtime.item')),
  status: Opt(ItemStatus)
}

export const MessageItemSchema = Type.Object({
  ...ItemBase,
  type: Type.Literal('message'),
  role: Literals('user', 'system', 'assistant'),
  content: Type.Array(ContentPartSchema, { maxItems: 64 })
}, strict)

export const FunctionCallItemSchema = Type.Object({
  ...ItemBase,
  type: Type.Literal('function_call'),
  call_id: Type.String({ minLength: 1, maxLength: 128 }),
  name: Type.String({ minLength: 1, maxLength: 128 }),
  arguments: Str()
}, strict)

export const FunctionCallOutputItemSchema = Type.Object({
  ...ItemBase,
  type: Type.Literal('function_call_output'),
  call_id: Type.String({ minLength: 1, maxLength: 128 }),
  output: Str()
}, strict)

/** Item schemas by `item.type`; codec.ts picks one so errors name the right fields. */
export const ItemSchemas = {
  message: MessageItemSchema,
  function_call: FunctionCallItemSchema,
  function_call_output: FunctionCallOutputItemSchema
} as const

export type MessageItemInput = Static<typeof MessageItemSchema>
export type ItemInput = Static<typeof ItemSchemas[keyof typeof ItemSchemas]>

export const FunctionToolSchema = Type.Object({
  type: Type.Literal('function'),
  name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9_-]+$' }),
  description: Opt(Str(16_384)),
  parameters: Opt(Type.Record(Type.String(), Type.Unknown())),
  strict: Opt(Type.Boolean())
}, strict)
export type FunctionTool = Static<typeof FunctionToolSchema>

/**
 * A remote MCP server as a tool source (GA `mcp` tool). The gateway lists its tools with the MCP
 * client SDK and runs the model's calls itself; approval flows are not supported (`never` only).
 */
export const McpToolSchema = Type.Object({
  type: Type.Literal('mcp'),
  server_label: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9_-]+$' }),
  server_url: Type.String({ pattern: '^https?://', maxLength: 2048 }),
  allowed_tools: Opt(Type.Union([Type.Array(Type.String({ maxLength: 64 }), { maxItems: 128 }), Type.Object({ tool_names: Opt(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 128 })), read_only: Opt(Type.Boolean()) }, strict), Type.Null()])),
  headers: Opt(Type.Union([Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 8192 })), Type.Null()])),
  require_approval: Opt(Type.Union([Type.Literal('never'), Type.Null()])),
  server_description: Opt(Str(4096)),
  authorization: Opt(Str(8192))
}, strict)
export type McpTool = Static<typeof McpToolSchema>

/** Tool schemas by `type`; codec.ts picks one so errors name the right fields. */
export const ToolSchemas = { function: FunctionToolSchema, mcp: McpToolSchema } as const
const ToolShape = Type.Object({ type: Type.String() })

export const ToolChoiceSchema = Type.Union([
  Literals('auto', 'none', 'required'),
  Type.Object({ type: Type.Literal('function'), name: Type.String({ minLength: 1 }) }, strict)
])
export type ToolChoice = Static<typeof ToolChoiceSchema>

const Loose = Type.Record(Type.String(), Type.Unknown())

/**
 * GA `truncation`: how a history over the model's context budget is cut before it goes upstream
 * (the stored conversation is never cut). `retention_ratio` keeps that fraction of the budget.
 */
export const TruncationSchema = Type.Union([
  Literals('auto', 'disabled'),
  Type.Object({
    type: Type.Literal('retention_ratio'),
    retention_ratio: Type.Number({ minimum: 0, maximum: 1 }),
    token_limits: Opt(Type.Object({ post_instructions: Opt(Type.Integer({ minimum: 1 })) }, strict))
  }, strict)
])

/**
 * Every GA session field. Text mode applies instructions, model, tools, tool_choice,
 * max_output_tokens, parallel_tool_calls, truncation and temperature (an extension: Chat
 * Completions has it); the rest (audio, tracing, include, prompt, reasoning) is accepted and echoed.
 */
export const SessionPatchSchema = Type.Object({
  type: Opt(Type.Literal('realtime')),
  object: Opt(Type.Literal('realtime.session')),
  id: Opt(Str(128)),
  model: Opt(Type.String({ minLength: 1, maxLength: 256 })),
  instructions: Opt(Str()),
  output_modalities: Opt(Modalities),
  tools: Opt(Type.Array(ToolShape, { maxItems: 128 })),
  tool_choice: Opt(ToolChoiceSchema),
  max_output_tokens: Opt(MaxOutputTokens),
  parallel_tool_calls: Opt(Type.Boolean()),
  temperature: Opt(Type.Number({ minimum: 0, maximum: 2 })),
  audio: Opt(Loose),
  include: Opt(Type.Array(Type.String())),
  tracing: Opt(Type.Union([Type.Literal('auto'), Loose, Type.Null()])),
  truncation: Opt(TruncationSchema),
  prompt: Opt(Type.Union([Loose, Type.Null()])),
  reasoning: Opt(Loose),
  expires_at: Opt(Type.Number()),
  conversation_id: Opt(Str(128))
}, strict)
export type SessionPatch = Omit<Static<typeof SessionPatchSchema>, 'tools'> & { tools?: Array<FunctionTool | McpTool> }

export const ResponseParamsSchema = Type.Object({
  conversation: Opt(Literals('auto', 'none')),
  input: Opt(Type.Array(Type.Record(Type.String(), Type.Unknown()), { maxItems: 1000 })),
  instructions: Opt(Str()),
  model: Opt(Type.String({ minLength: 1, maxLength: 256 })),
  tools: Opt(Type.Array(FunctionToolSchema, { maxItems: 128 })),
  tool_choice: Opt(ToolChoiceSchema),
  max_output_tokens: Opt(MaxOutputTokens),
  output_modalities: Opt(Modalities),
  parallel_tool_calls: Opt(Type.Boolean()),
  temperature: Opt(Type.Number({ minimum: 0, maximum: 2 })),
  metadata: Opt(Type.Union([Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 512 }), { maxProperties: 16 }), Type.Null()])),
  audio: Opt(Loose),
  prompt: Opt(Type.Union([Loose, Type.Null()])),
  reasoning: Opt(Loose)
}, strict)
export type ResponseParams = Static<typeof ResponseParamsSchema>

/** Client event schemas by `type`. `item` and `response.input` entries are checked per item type. */
export const ClientEventSchemas = {
  'session.update': Type.Object({ type: Type.Literal('session.update'), event_id: EventId, session: SessionPatchSchema }, strict),
  'conversation.item.create': Type.Object({
    type: Type.Literal('conversation.item.create'),
    event_id: EventId,
    previous_item_id: Opt(Type.Union([ItemId, Type.Null()])),
    item: Type.Object({ type: Type.String() })
  }, strict),
  'conversation.item.retrieve': Type.Object({ type: Type.Literal('conversation.item.retrieve'), event_id: EventId, item_id: ItemId }, strict),
  'conversation.item.delete': Type.Object({ type: Type.Literal('conversation.item.delete'), event_id: EventId, item_id: ItemId }, strict),
  'response.create': Type.Object({ type: Type.Literal('response.create'), event_id: EventId, response: Opt(ResponseParamsSchema) }, strict),
  'response.cancel': Type.Object({ type: Type.Literal('response.cancel'), event_id: EventId, response_id: Opt(Type.String({ maxLength: 128 })) }, strict)
} as const

/** Realtime client events that only make sense with audio; answered with `audio_not_supported`. */
export const AudioEventTypes: ReadonlySet<string> = new Set([
  'input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear',
  'output_audio_buffer.clear', 'conversation.item.truncate'
])

type Decoded<K extends keyof typeof ClientEventSchemas> = Static<typeof ClientEventSchemas[K]>

/** A validated client event. `item` entries are replaced by their checked form. */
export type ClientEvent =
  | (Omit<Decoded<'session.update'>, 'session'> & { session: SessionPatch })
  | (Omit<Decoded<'conversation.item.create'>, 'item'> & { item: ItemInput })
  | Decoded<'conversation.item.retrieve'>
  | Decoded<'conversation.item.delete'>
  | (Omit<Decoded<'response.create'>, 'response'> & { response?: Omit<ResponseParams, 'input'> & { input?: ItemInput[] } })
  | Decoded<'response.cancel'>

// ---- Server events -------------------------------------------------------------------------

/** A conversation item as the gateway stores and sends it: id, object and status always set. */
export type Item =
  | (RT.RealtimeConversationItemUserMessage & ItemMeta)
  | (RT.RealtimeConversationItemSystemMessage & ItemMeta)
  | (RT.RealtimeConversationItemAssistantMessage & ItemMeta)
  | (RT.RealtimeConversationItemFunctionCall & ItemMeta & { call_id: string })
  | (RT.RealtimeConversationItemFunctionCallOutput & ItemMeta)
  | (RT.RealtimeMcpToolCall & ItemMeta)
  | (RT.RealtimeMcpListTools & ItemMeta)
interface ItemMeta { id: string, object: 'realtime.item', status: 'completed' | 'incomplete' | 'in_progress' }

/** The effective session, as sent in `session.created` / `session.updated`. */
export type GatewaySession = RT.RealtimeSessionCreateRequest & {
  object: 'realtime.session'
  id: string
  model: string
  output_modalities: Array<'text'>
  /** Extension: the conversation this socket is attached to. */
  conversation_id: string
  /** Extension: Chat Completions sampling temperature. */
  temperature?: number
  /** Extension, in session.updated only: what the gateway changed in the requested config, and why. */
  gateway_notices?: string[]
  expires_at: number
}

export type ResponseResource = RT.RealtimeResponse & { id: string, object: 'realtime.response' }

type WithSession<E, S> = Omit<E, 'session'> & { session: S }

/** Every event the gateway sends. */
export type ServerEvent =
  | WithSession<RT.SessionCreatedEvent, GatewaySession>
  | WithSession<RT.SessionUpdatedEvent, GatewaySession>
  | RT.ConversationItemAdded
  | RT.ConversationItemDone
  | RT.ConversationItemDeletedEvent
  | RT.RealtimeServerEvent.ConversationItemRetrieved
  | RT.ResponseCreatedEvent
  | RT.ResponseOutputItemAddedEvent
  | RT.ResponseContentPartAddedEvent
  | RT.ResponseTextDeltaEvent
  | RT.ResponseTextDoneEvent
  | RT.ResponseContentPartDoneEvent
  | RT.ResponseFunctionCallArgumentsDeltaEvent
  | RT.ResponseFunctionCallArgumentsDoneEvent
  | RT.ResponseOutputItemDoneEvent
  | RT.ResponseMcpCallArgumentsDelta
  | RT.ResponseMcpCallArgumentsDone
  | RT.ResponseMcpCallInProgress
  | RT.ResponseMcpCallCompleted
  | RT.ResponseMcpCallFailed
  | RT.McpListToolsInProgress
  | RT.McpListToolsCompleted
  | RT.McpListToolsFailed
  | RT.ResponseDoneEvent
  | RT.RateLimitsUpdatedEvent
  | RT.RealtimeErrorEvent

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** A server event before the gateway stamps its `event_id`. */
export type OutgoingEvent = DistributiveOmit<ServerEvent, 'event_id'>
