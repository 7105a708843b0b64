/**
 * Turns a conversation's items into the Chat Completions messages of one upstream request.
 * Pure: the same items always give the same messages.
 */
import type { Item } from '../protocol/events.js'
import type { ChatContentPart, ChatMessage, ChatToolCall } from '../providers/provider.js'

/**
 * Maps items oldest-first onto messages, after a system message with `instructions`.
 * Items still `in_progress` are left out, and so are tool calls without an output (and
 * outputs without a call): Chat Completions rejects a history with either.
 */
export function toChatMessages (items: readonly Item[], instructions: string | undefined): ChatMessage[] {
  const messages: ChatMessage[] = []
  if (instructions !== undefined && instructions !== '') messages.push({ role: 'system', content: instructions })
  const answered = new Set<string>()
  const called = new Set<string>()
  for (const item of items) {
    if (item.type === 'function_call_output') answered.add(item.call_id)
    if (item.type === 'function_call' && item.status === 'completed') called.add(item.call_id)
  }

  for (const item of items) {
    if (item.status === 'in_progress') continue
    switch (item.type) {
      case 'message':
        messages.push(toMessage(item))
        break
      case 'function_call': {
        if (item.status !== 'completed' || !answered.has(item.call_id)) break
        const call: ChatToolCall = { id: item.call_id, name: item.name, arguments: item.arguments }
        const last = messages.at(-1)
        if (last?.role === 'assistant') (last.toolCalls ??= []).push(call)
        else messages.push({ role: 'assistant', content: null, toolCalls: [call] })
        break
      }
      case 'function_call_output':
        if (called.has(item.call_id)) messages.push({ role: 'tool', toolCallId: item.call_id, content: item.output })
        break
    }
  }
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
