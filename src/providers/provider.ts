/**
 * The upstream seam: a ModelProvider streams one model turn. session/ sees only these types;
 * providers/openai.ts maps them onto the `openai` SDK.
 */

/** A Chat Completions-shaped message, independent of any SDK. */
export type ChatMessage =
  | { role: 'system', content: string }
  | { role: 'user', content: string | ChatContentPart[] }
  | { role: 'assistant', content: string | null, toolCalls?: ChatToolCall[] }
  | { role: 'tool', toolCallId: string, content: string }

export type ChatContentPart =
  | { type: 'text', text: string }
  | { type: 'image_url', url: string, detail?: 'auto' | 'low' | 'high' }

export interface ChatToolCall { id: string, name: string, arguments: string }

export interface ChatTool { name: string, description?: string, parameters?: Record<string, unknown>, strict?: boolean }

export type ChatToolChoice = 'auto' | 'none' | 'required' | { name: string }

export interface ModelRequest {
  model: string
  messages: ChatMessage[]
  tools?: ChatTool[]
  toolChoice?: ChatToolChoice
  parallelToolCalls?: boolean
  temperature?: number
  maxOutputTokens?: number
  /** How a history over the model's context budget is cut (Realtime `session.truncation`); absent: `auto`. */
  truncation?: Truncation
}

/** Realtime `session.truncation`: the gateway leaves the oldest turns out of the request, never the stored history. */
export type Truncation =
  | 'auto'
  | 'disabled'
  | { type: 'retention_ratio', retention_ratio: number, token_limits?: { post_instructions?: number } }

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter'

export interface TokenUsage {
  inputTokens: number
  outputTokens: number
  totalTokens: number
  cachedInputTokens?: number
}

/** What a provider yields, in stream order. */
export type ProviderEvent =
  | { type: 'text', delta: string }
  /** A tool call opens: `index` is the upstream's tool-call index. */
  | { type: 'tool_call', index: number, callId: string, name: string }
  | { type: 'tool_call_arguments', index: number, delta: string }
  | { type: 'finish', reason: FinishReason }
  | { type: 'usage', usage: TokenUsage }

export interface ModelProvider {
  /**
   * Streams one model turn. The iterable ends after the upstream's last chunk. Aborting
   * `signal` stops the upstream request at once; iteration then ends (or throws) and the
   * caller decides the outcome from `signal.aborted`. Failures are thrown as GW_ERR_PROVIDER_*
   * errors carrying `retryable` and, when the upstream sent one, `retryAfterMs`.
   */
  stream (request: ModelRequest, signal: AbortSignal): AsyncIterable<ProviderEvent>
}
