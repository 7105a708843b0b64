/**
 * Turns the diagnostics channels into OpenTelemetry spans: one span per response
 * (`tokenwire.response`), with a child for its upstream request (`chat <model>`, GenAI
 * semantic conventions) and one per append of its events to the conversation log
 * (`tokenwire.store.append`). Parents are named explicitly (no context manager is installed, so
 * nothing else in the process pays for async context tracking).
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api'
import {
  responseDone, responseStarted, storeAppend, upstreamEnd, upstreamRequest,
  type ResponseEnded, type ResponseStarted, type StoreAppendContext, type UpstreamEnded, type UpstreamRequested
} from '../diagnostics.js'

export interface SpanOptions {
  /** The backend's kind (`memory`, `redis`, `redis-cluster`). */
  readonly storeKind: string
}

interface ResponseSpan { readonly span: Span, readonly model: string }

/** Conversations whose last response span is remembered for its store appends, at most. */
const MAX_CONVERSATIONS = 10_000

/** Subscribes; returns the function that stops it. */
export function traceResponses (tracer: Tracer, { storeKind }: SpanOptions): () => void {
  const byRun = new Map<object, ResponseSpan>()
  const byRequest = new WeakMap<object, ResponseSpan>()
  const upstreamSpans = new WeakMap<object, Span>()
  /** A conversation's current (or just ended) response span: parent of its log appends. */
  const byConversation = new Map<string, { readonly span: Span, done: boolean }>()
  const appendSpans = new WeakMap<object, Span>()

  const onStart = ({ run, id, model, conversationId, request }: ResponseStarted): void => {
    const span = tracer.startSpan('tokenwire.response', {
      kind: SpanKind.SERVER,
      attributes: {
        'tokenwire.response.id': id,
        'gen_ai.request.model': model,
        ...(conversationId === null ? { 'tokenwire.response.out_of_band': true } : { 'tokenwire.conversation.id': conversationId })
      }
    }, ROOT_CONTEXT)
    const entry = { span, model }
    byRun.set(run, entry)
    byRequest.set(request, entry)
    if (conversationId !== null) {
      byConversation.delete(conversationId)
      if (byConversation.size >= MAX_CONVERSATIONS) byConversation.delete(byConversation.keys().next().value ?? '')
      byConversation.set(conversationId, { span, done: false })
    }
  }

  const onUpstream = ({ request, tenant }: UpstreamRequested): void => {
    const parent = byRequest.get(request)
    if (parent === undefined) return
    parent.span.setAttribute('tokenwire.tenant', tenant)
    upstreamSpans.set(request, tracer.startSpan(`chat ${parent.model}`, {
      kind: SpanKind.CLIENT,
      attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': parent.model }
    }, trace.setSpan(ROOT_CONTEXT, parent.span)))
  }

  const endUpstream = ({ request, error }: UpstreamEnded): void => {
    const span = upstreamSpans.get(request)
    if (span === undefined) return
    upstreamSpans.delete(request)
    if (error !== undefined) fail(span, error)
    span.end()
  }

  const onDone = ({ run, request, response }: ResponseEnded): void => {
    const entry = byRun.get(run)
    if (entry === undefined) return
    byRun.delete(run)
    endUpstream({ request }) // still open only if the stream never ended (it always does)
    const { span } = entry
    const usage = response.usage
    span.setAttribute('tokenwire.response.status', response.status ?? 'unknown')
    if (usage !== undefined) {
      span.setAttributes({ 'gen_ai.usage.input_tokens': usage.input_tokens ?? 0, 'gen_ai.usage.output_tokens': usage.output_tokens ?? 0 })
    }
    const error = response.status_details?.error
    if (response.status === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: error?.code ?? 'failed' })
    span.end()
    const conversationId = response.conversation_id
    const current = conversationId === undefined ? undefined : byConversation.get(conversationId)
    if (current?.span === span) current.done = true
  }

  const appendHandlers = {
    start (context: StoreAppendContext): void {
      const parent = byConversation.get(context.conversationId)
      if (parent === undefined) return
      // The first append after the response ended carries its response.done: the last one it owns.
      if (parent.done) byConversation.delete(context.conversationId)
      appendSpans.set(context, tracer.startSpan('tokenwire.store.append', {
        kind: SpanKind.CLIENT,
        attributes: {
          'tokenwire.store.kind': storeKind,
          ...(storeKind === 'memory' ? {} : { 'db.system.name': 'redis' }),
          'db.operation.name': 'append',
          'tokenwire.conversation.id': context.conversationId,
          'tokenwire.events': context.events
        }
      }, trace.setSpan(ROOT_CONTEXT, parent.span)))
    },
    end (): void {},
    asyncStart (): void {},
    asyncEnd (context: StoreAppendContext): void {
      const span = appendSpans.get(context)
      if (span === undefined) return
      appendSpans.delete(context)
      if (context.error !== undefined) fail(span, context.error)
      span.end()
    },
    error (): void {}
  }

  const unsubscribes = [
    responseStarted.subscribe(onStart),
    upstreamRequest.subscribe(onUpstream),
    upstreamEnd.subscribe(endUpstream),
    responseDone.subscribe(onDone)
  ]
  storeAppend.subscribe(appendHandlers)
  return () => {
    for (const unsubscribe of unsubscribes.splice(0)) unsubscribe()
    storeAppend.unsubscribe(appendHandlers)
    byRun.clear()
    byConversation.clear()
  }
}

/** Marks a span failed with the gateway's error code (never a message that may carry upstream text). */
function fail (span: Span, error: unknown): void {
  const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : error instanceof Error ? error.name : 'error'
  span.setAttribute('error.type', code)
  span.setStatus({ code: SpanStatusCode.ERROR, message: code })
}
