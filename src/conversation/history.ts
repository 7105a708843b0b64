/**
 * Turns a conversation's items into the Chat Completions messages of one upstream request.
 * Pure: the same items always give the same messages.
 */
import type { Item } from '../protocol/events.js'
import type { ChatContentPart, ChatMessage, ChatToolCall } from '../providers/provider.js'

type CallItem = Extract<Item, { type: 'function_call' }>
type McpCallItem = Extract<Item, { type: 'mcp_call' }>

/** An MCP call carries its own result: the output, or its error as JSON the model can read. */
function mcpResult (item: McpCallItem): string {
  return item.output ?? JSON.stringify({ error: item.error ?? { message: 'no result' } })
}

/**
 * Maps items oldest-first onto messages, after a system message with `instructions`.
 * Chat Completions wants every tool call answered by a `tool` message right after the
 * assistant message that made it, so: items still `in_progress` are left out; a run of
 * function calls becomes one assistant message (joined to the assistant text before it)
 * followed by their outputs, wherever those were stored; calls without an output, outputs
 * without a completed call, and second outputs for one call are left out.
 */
export function toChatMessages (items: readonly Item[], instructions: string | undefined): ChatMessage[] {
  const messages: ChatMessage[] = []
  if (instructions !== undefined && instructions !== '') messages.push({ role: 'system', content: instructions })
  const outputs = new Map<string, string>()
  for (const item of items) {
    if (item.type === 'function_call_output' && item.status !== 'in_progress' && !outputs.has(item.call_id)) outputs.set(item.call_id, item.output)
  }

  let run: CallItem[] = []
  const flush = () => {
    const calls = run.filter((call) => outputs.has(call.call_id))
    run = []
    if (calls.length === 0) return
    const toolCalls: ChatToolCall[] = calls.map((call) => ({ id: call.call_id, name: call.name, arguments: call.arguments }))
    const last = messages.at(-1)
    if (last?.role === 'assistant' && last.toolCalls === undefined) last.toolCalls = toolCalls
    else messages.push({ role: 'assistant', content: null, toolCalls })
    for (const call of calls) {
      messages.push({ role: 'tool', toolCallId: call.call_id, content: outputs.get(call.call_id) ?? '' })
      outputs.delete(call.call_id)
    }
  }

  for (const item of items) {
    if (item.status === 'in_progress' || item.type === 'mcp_list_tools') continue
    if (item.type === 'mcp_call') {
      // The gateway ran it: the call and its result become a tool call and its answer.
      if (item.status !== 'completed') continue
      outputs.set(item.id, mcpResult(item))
      run.push({ id: item.id, object: 'realtime.item', type: 'function_call', status: 'completed', call_id: item.id, name: item.name, arguments: item.arguments })
      continue
    }
    if (item.type === 'function_call_output') {
      flush() // an answer ends the model's turn: later calls were a new decision
      continue
    }
    if (item.type === 'function_call') {
      if (item.status === 'completed') run.push(item)
      continue
    }
    flush()
    messages.push(toMessage(item))
  }
  flush()
  return messages
}

function toMessage (item: Extract<Item, { type: 'message' }>): ChatMessage {
  const text = (parts: ReadonlyArray<{ text?: string }>) => parts.map((p) => p.text ?? '').join('')
  switch (item.role) {
    case 'system':
      return { role: 'system', content: text(item.content) }
    case 'assistant':
      return { role: 'assistant', content: text(item.content) }
    case 'user': {
      const parts: ChatContentPart[] = item.content.map((part) => part.type === 'input_image'
        ? { type: 'image_url', url: part.image_url ?? '', ...(part.detail === undefined ? {} : { detail: part.detail }) }
        : { type: 'text', text: part.text ?? '' })
      const only = parts[0]
      return { role: 'user', content: parts.length === 1 && only?.type === 'text' ? only.text : parts }
    }
  }
}
