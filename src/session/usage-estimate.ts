/**
 * Usage for a reply the upstream sent no usage for (cancelled, failed, or an upstream that does
 * not report it): input estimated from the request's characters (about 4 per token), output
 * counted with the GPT-4o tokenizer (o200k). The tokenizer loads on first use only (~0.5 s).
 */
import { loadTokenizer, TokenCounter } from '../conversation/context-budget.js'
import type { ModelRequest, TokenUsage } from '../providers/provider.js'

const CHARS_PER_TOKEN = 4
/** Tokens the Chat format adds per message (role and separators), as OpenAI's cookbook counts them. */
const TOKENS_PER_MESSAGE = 3

/** The context budget's o200k counter (one tokenizer per process); outputs are rarely counted twice. */
const counter = new TokenCounter(1_000)

/** A quick, allocation-light estimate of a request's input tokens. */
export function estimateInputTokens (request: Pick<ModelRequest, 'messages' | 'tools'>): number {
  let chars = 0
  for (const message of request.messages) {
    chars += TOKENS_PER_MESSAGE * CHARS_PER_TOKEN
    if (typeof message.content === 'string') chars += message.content.length
    else if (Array.isArray(message.content)) for (const part of message.content) chars += part.type === 'text' ? part.text.length : 85 * CHARS_PER_TOKEN
    if (message.role === 'assistant') for (const call of message.toolCalls ?? []) chars += call.name.length + call.arguments.length
  }
  for (const tool of request.tools ?? []) chars += tool.name.length + (tool.description?.length ?? 0) + JSON.stringify(tool.parameters ?? {}).length
  return Math.ceil(chars / CHARS_PER_TOKEN)
}

/** Usage of a reply that produced `output` (its text and tool arguments) for `request`. */
export async function estimateUsage (request: Pick<ModelRequest, 'messages' | 'tools'>, output: string): Promise<TokenUsage> {
  const inputTokens = estimateInputTokens(request)
  let outputTokens = 0
  if (output !== '') {
    await loadTokenizer()
    outputTokens = counter.count(output)
  }
  return { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens }
}
