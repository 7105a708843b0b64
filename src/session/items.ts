/**
 * Pure helpers a session uses on items and responses: client items as stored, the calls and text
 * of a response, the latest user message, and tools as the upstream and clients see them.
 */
import { newId } from '../ids.js'
import type { FunctionTool, GatewaySession, Item, ItemInput, ResponseResource, ToolChoice } from '../protocol/events.js'
import type { ChatTool, ChatToolChoice } from '../providers/provider.js'

export type CallItem = Extract<Item, { type: 'function_call' }>

/** The function calls a response made. */
export function functionCalls (response: ResponseResource): CallItem[] {
  return (response.output ?? []).flatMap((item): CallItem[] => item.type === 'function_call' && item.id !== undefined && item.call_id !== undefined
    ? [{ id: item.id, object: 'realtime.item', type: 'function_call', status: 'completed', call_id: item.call_id, name: item.name, arguments: item.arguments }]
    : [])
}

/** The text of a response's assistant messages. */
export function responseText (response: ResponseResource): string {
  return (response.output ?? []).map((item) => item.type === 'message' ? item.content.map((part) => ('text' in part ? part.text ?? '' : '')).join('') : '').join('')
}

/** The text of the latest user message, if there is one. */
export function latestUserText (items: readonly Item[]): string | undefined {
  const message = items.findLast((item) => item.type === 'message' && item.role === 'user')
  return message?.type === 'message' ? message.content.map((part) => part.text ?? '').join('\n') : undefined
}

/** A user message carrying a chain step's rendered prompt (it never joins the conversation). */
export function userItem (text: string): Item {
  return { id: newId('item'), object: 'realtime.item', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_text', text }] }
}

/** A tool as session.updated shows it: an MCP server's credentials are not echoed. */
export function redactTool<T extends { type?: string }> (tool: T): T {
  if (tool.type !== 'mcp') return tool
  const copy: Record<string, unknown> = { ...tool }
  const headers = copy['headers']
  if (typeof headers === 'object' && headers !== null) copy['headers'] = Object.fromEntries(Object.keys(headers).map((key) => [key, '[redacted]']))
  if (copy['authorization'] !== undefined) copy['authorization'] = '[redacted]'
  return copy as T
}

/** A client item as stored: id given or generated, `object` and `status` set, parts normalised. */
export function toItem (input: ItemInput, generatedId: string): Item {
  // A client's item is whole when it arrives; only the gateway streams items in progress.
  const meta = { id: input.id ?? generatedId, object: 'realtime.item' as const, status: input.status === 'incomplete' ? 'incomplete' as const : 'completed' as const }
  switch (input.type) {
    case 'function_call':
      return { ...meta, type: 'function_call', call_id: input.call_id, name: input.name, arguments: input.arguments }
    case 'function_call_output':
      return { ...meta, type: 'function_call_output', call_id: input.call_id, output: input.output }
    case 'message':
      switch (input.role) {
        case 'assistant':
          return { ...meta, type: 'message', role: 'assistant', content: input.content.map((p) => ({ type: 'output_text' as const, text: p.text ?? '' })) }
        case 'system':
          return { ...meta, type: 'message', role: 'system', content: input.content.map((p) => ({ type: 'input_text' as const, text: p.text ?? '' })) }
        case 'user':
          return {
            ...meta,
            type: 'message',
            role: 'user',
            content: input.content.map((p) => p.type === 'input_image'
              ? { type: 'input_image' as const, image_url: p.image_url ?? '', ...(p.detail === undefined ? {} : { detail: p.detail }) }
              : { type: 'input_text' as const, text: p.text ?? '' })
          }
      }
  }
}

export function toChatTool (tool: FunctionTool): ChatTool {
  return {
    name: tool.name,
    ...(tool.description === undefined ? {} : { description: tool.description }),
    ...(tool.parameters === undefined ? {} : { parameters: tool.parameters }),
    ...(tool.strict === undefined ? {} : { strict: tool.strict })
  }
}

export function toChatToolChoice (choice: ToolChoice | NonNullable<GatewaySession['tool_choice']>): ChatToolChoice {
  if (typeof choice === 'string') return choice === 'none' || choice === 'required' ? choice : 'auto'
  return 'name' in choice && typeof choice.name === 'string' ? { name: choice.name } : 'auto'
}
