/**
 * The metrics registry fed through the real diagnostics channels (no gateway): bounded labels,
 * the allocation-free histogram's exposition, and the matching of a response's first frame.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  deviceAttached, deviceDetached, redisError, responseDone, responseOutput, responseReserve, responseStarted,
  socketFrame, upstreamEnd, upstreamRequest, upstreamRetry
} from '../../src/diagnostics.js'
import { gatewayError } from '../../src/errors.js'
import { FastHistogram, escapeLabelValue } from '../../src/metrics/fast-histogram.js'
import { LabelCap, upstreamErrorKind } from '../../src/metrics/labels.js'
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js'
import type { ResponseResource } from '../../src/protocol/events.js'

let metrics: Metrics | undefined
afterEach(() => {
  metrics?.close()
  metrics = undefined
})

/** `name{labels} value` lines as a map from `name{labels}` to value. */
function samples (text: string): Map<string, number> {
  const map = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    map.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return map
}

function response (id: string, status: NonNullable<ResponseResource['status']>, usage?: { input_tokens: number, output_tokens: number }): ResponseResource {
  return { id, object: 'realtime.response', status, ...(usage === undefined ? {} : { usage }) }
}

/** Plays one response through the channels, as response-run.ts publishes it. */
function play (model: string, tenant: string | undefined, outputs: number, usage = { input_tokens: 7, output_tokens: 3 }): void {
  const run = {}
  const request = { model }
  const id = `resp_${model}_${Math.random().toString(36).slice(2, 8)}`
  responseStarted.publish({ run, id, model, conversationId: 'conv_x', request })
  if (tenant !== undefined) upstreamRequest.publish({ request, tenant, scope: {} })
  for (let i = 0; i < outputs; i++) responseOutput.publish(run)
  upstreamEnd.publish({ request })
  responseDone.publish({ run, id, model, request, response: response(id, 'completed', usage) })
}

describe('createMetrics', () => {
  it('caps the model label: past maxModels distinct models, new ones are counted as other', async () => {
    metrics = createMetrics({ openSockets: () => 3, maxModels: 2 })
    play('model-a', 'acme', 2)
    play('model-b', 'acme', 2)
    play('model-c', 'acme', 2)
    play('model-d', undefined, 2)
    play('model-a', 'globex', 1)
    const text = await metrics.render()
    const s = samples(text)
    expect(s.get('tokenwire_responses_total{model="model-a",status="completed"}')).toBe(2)
    expect(s.get('tokenwire_responses_total{model="model-b",status="completed"}')).toBe(1)
    expect(s.get('tokenwire_responses_total{model="other",status="completed"}')).toBe(2)
    expect(text).not.toContain('model-c')
    expect(text).not.toContain('model-d')
    expect(s.get('tokenwire_tokens_total{model="other",tenant="unknown",type="input"}')).toBe(7)
    expect(s.get('tokenwire_tokens_total{model="model-a",tenant="globex",type="output"}')).toBe(3)
    expect(s.get('tokenwire_inter_token_seconds_count{model="model-a"}')).toBe(1)
    expect(s.get('tokenwire_inter_token_seconds_count{model="other"}')).toBe(2)
    expect(s.get('tokenwire_time_to_first_token_seconds_count{model="other"}')).toBe(2)
    expect(s.get('tokenwire_open_sockets')).toBe(3)
    expect(s.get('tokenwire_active_responses')).toBe(0)
  })

  it('times the lease request to the upstream, and the first output to its first frame on a socket', async () => {
    metrics = createMetrics({ openSockets: () => 0 })
    const run = {}
    const request = { model: 'gpt-4o' }
    responseReserve.publish('resp_abc')
    responseStarted.publish({ run, id: 'resp_abc', model: 'gpt-4o', conversationId: null, request })
    responseOutput.publish(run)
    // Frames of other responses, or of other types, are not it.
    socketFrame.publish('{"event_id":"ev_1","type":"response.output_text.delta","response_id":"resp_abc","delta":"x"}')
    socketFrame.publish('{"event_id":"ev_2","type":"response.output_item.added","response_id":"resp_zzz","output_index":0}')
    let s = samples(await metrics.render())
    expect(s.get('tokenwire_gateway_latency_seconds_count{stage="before_upstream"}')).toBe(1)
    expect(s.get('tokenwire_gateway_latency_seconds_count{stage="first_token"}')).toBeUndefined()
    expect(s.get('tokenwire_active_responses')).toBe(1)
    socketFrame.publish('{"event_id":"ev_3","type":"response.output_item.added","response_id":"resp_abc","output_index":0}')
    // A second socket showing the same frame is not counted again.
    socketFrame.publish('{"event_id":"event_x","type":"response.output_item.added","response_id":"resp_abc","output_index":0}')
    s = samples(await metrics.render())
    expect(s.get('tokenwire_gateway_latency_seconds_count{stage="first_token"}')).toBe(1)
  })

  it('counts upstream errors by kind, Redis errors by operation, and attached devices', async () => {
    metrics = createMetrics({ openSockets: () => 0 })
    upstreamRetry.publish(gatewayError('GW_ERR_PROVIDER_RATE_LIMITED'))
    upstreamEnd.publish({ request: {}, error: gatewayError('GW_ERR_PROVIDER_TIMEOUT', ['UPSTREAM_TIMEOUT_MS', 1]) })
    upstreamEnd.publish({ request: {}, error: gatewayError('GW_ERR_CONVERSATION_FULL', [1]) }) // not an upstream failure
    upstreamEnd.publish({ request: {}, error: new TypeError('bug') })
    redisError.publish({ operation: 'usage', error: new Error('down') })
    redisError.publish({ operation: 'store', error: new Error('down') })
    redisError.publish({ operation: 'store', error: new Error('down') })
    deviceAttached.publish('conv_a')
    deviceAttached.publish('conv_a')
    deviceDetached.publish('conv_a')
    const s = samples(await metrics.render())
    expect(s.get('tokenwire_upstream_errors_total{kind="rate_limited",retried="true"}')).toBe(1)
    expect(s.get('tokenwire_upstream_errors_total{kind="timeout",retried="false"}')).toBe(1)
    expect(s.get('tokenwire_upstream_errors_total{kind="other",retried="false"}')).toBe(1)
    expect([...s.keys()].filter((k) => k.startsWith('tokenwire_upstream_errors_total'))).toHaveLength(3)
    expect(s.get('tokenwire_redis_errors_total{operation="usage"}')).toBe(1)
    expect(s.get('tokenwire_redis_errors_total{operation="store"}')).toBe(2)
    expect(s.get('tokenwire_attached_devices')).toBe(1)
  })

  it('forgets a lease request that waits longer than 30 s, when a newer one arrives', async () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    try {
      metrics = createMetrics({ openSockets: () => 0 })
      responseReserve.publish('resp_stale')
      vi.advanceTimersByTime(31_000)
      responseReserve.publish('resp_fresh') // drops the stale one
      responseStarted.publish({ run: {}, id: 'resp_stale', model: 'gpt-4o', conversationId: 'conv_x', request: {} })
      responseStarted.publish({ run: {}, id: 'resp_fresh', model: 'gpt-4o', conversationId: 'conv_y', request: {} })
      const s = samples(await metrics.render())
      expect(s.get('tokenwire_gateway_latency_seconds_count{stage="before_upstream"}')).toBe(1)
      expect(s.get('tokenwire_active_responses')).toBe(2)
    } finally {
      vi.useRealTimers()
    }
  })

  it('does not observe a pending timing matched after 30 s, even with no newer one to drop it', async () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    try {
      metrics = createMetrics({ openSockets: () => 0 })
      const run = {}
      responseReserve.publish('resp_slow')
      vi.advanceTimersByTime(31_000)
      responseStarted.publish({ run, id: 'resp_slow', model: 'gpt-4o', conversationId: 'conv_x', request: {} })
      responseOutput.publish(run)
      vi.advanceTimersByTime(31_000)
      socketFrame.publish('{"event_id":"ev_1","type":"response.output_item.added","response_id":"resp_slow","output_index":0}')
      const s = samples(await metrics.render())
      expect(s.get('tokenwire_gateway_latency_seconds_count{stage="before_upstream"}')).toBeUndefined()
      expect(s.get('tokenwire_gateway_latency_seconds_count{stage="first_token"}')).toBeUndefined()
      expect(s.get('tokenwire_time_to_first_token_seconds_count{model="gpt-4o"}')).toBe(1)
    } finally {
      vi.useRealTimers()
    }
  })

  it('counts odd upstream usage (negative, non-numeric) as 0 tokens instead of throwing in the listener', async () => {
    metrics = createMetrics({ openSockets: () => 0 })
    const odd = { input_tokens: -5, output_tokens: '12' } as unknown as { input_tokens: number, output_tokens: number }
    play('odd-model', 'acme', 1, odd)
    play('odd-model', 'acme', 1)
    const s = samples(await metrics.render())
    expect(s.get('tokenwire_responses_total{model="odd-model",status="completed"}')).toBe(2)
    expect(s.get('tokenwire_tokens_total{model="odd-model",tenant="acme",type="input"}')).toBe(7)
    expect(s.get('tokenwire_tokens_total{model="odd-model",tenant="acme",type="output"}')).toBe(3)
  })

  it('stops listening when closed', async () => {
    metrics = createMetrics({ openSockets: () => 0 })
    metrics.close()
    play('gpt-4o', 'acme', 3)
    expect(await metrics.render()).not.toContain('tokenwire_responses_total{')
    expect(responseDone.hasSubscribers).toBe(false)
  })
})

describe('FastHistogram', () => {
  it('renders cumulative buckets (a value on a bound goes in it), +Inf, sum and count per series', () => {
    const h = new FastHistogram({ name: 'x_seconds', help: 'help with \\ and\nnewline', labelNames: ['model'], buckets: [0.1, 1] })
    const a = h.series({ model: 'a' })
    a.observe(0.1)
    a.observe(0.5)
    a.observe(5)
    expect(h.series({ model: 'a' })).toBe(a)
    h.series({ model: 'we"ird\\\n' }).observe(0.01)
    expect(h.render().split('\n')).toEqual([
      '# HELP x_seconds help with \\\\ and\\nnewline',
      '# TYPE x_seconds histogram',
      'x_seconds_bucket{model="a",le="0.1"} 1',
      'x_seconds_bucket{model="a",le="1"} 2',
      'x_seconds_bucket{model="a",le="+Inf"} 3',
      'x_seconds_sum{model="a"} 5.6',
      'x_seconds_count{model="a"} 3',
      'x_seconds_bucket{model="we\\"ird\\\\\\n",le="0.1"} 1',
      'x_seconds_bucket{model="we\\"ird\\\\\\n",le="1"} 1',
      'x_seconds_bucket{model="we\\"ird\\\\\\n",le="+Inf"} 1',
      'x_seconds_sum{model="we\\"ird\\\\\\n"} 0.01',
      'x_seconds_count{model="we\\"ird\\\\\\n"} 1'
    ])
  })

  it('renders a series without labels, and refuses bad names and unordered buckets', () => {
    const h = new FastHistogram({ name: 'y', help: 'y', labelNames: [], buckets: [1] })
    h.series({}).observe(2)
    expect(h.render()).toContain('y_bucket{le="+Inf"} 1\ny_sum 2\ny_count 1')
    expect(() => new FastHistogram({ name: 'bad-name', help: '', labelNames: [], buckets: [] })).toThrow(TypeError)
    expect(() => new FastHistogram({ name: 'z', help: '', labelNames: [], buckets: [2, 1] })).toThrow(TypeError)
    expect(escapeLabelValue('plain')).toBe('plain')
  })
})

describe('labels', () => {
  it('keeps the first N distinct values and reports the rest as other', () => {
    const cap = new LabelCap(2)
    expect([cap.label('a'), cap.label('b'), cap.label('c'), cap.label('a'), cap.label('')]).toEqual(['a', 'b', 'other', 'a', 'unknown'])
  })

  it('names upstream failure kinds from the registry codes', () => {
    expect(upstreamErrorKind(gatewayError('GW_ERR_PROVIDER_UNAVAILABLE'))).toBe('unavailable')
    expect(upstreamErrorKind(gatewayError('GW_ERR_PROVIDER_REJECTED', [400]))).toBe('rejected')
    expect(upstreamErrorKind(gatewayError('GW_ERR_PROVIDER_STREAM_INTERRUPTED'))).toBe('stream_interrupted')
    expect(upstreamErrorKind(gatewayError('GW_ERR_STORE_UNAVAILABLE'))).toBeUndefined()
    expect(upstreamErrorKind({ code: 'ECONNRESET' })).toBe('other')
    expect(upstreamErrorKind('a string')).toBe('other')
  })
})
