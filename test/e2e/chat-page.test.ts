/**
 * The chat page in a real headless Chromium (playwright-core + Debian chromium) against a real
 * gateway and its upstream simulator: what a person sees. Replies are paced by simulator
 * scenarios, and every wait is on a condition in the page, never a sleep. Screenshots of each
 * moment go to test-results/e2e/.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { launchChromium, newContext, snap, watchErrors } from './browser.js'

const TIMEOUT_MS = 60_000
/** Token pacing for replies a test must act on mid-way (stop, reload, a second tab): slow enough for a loaded CI machine. */
const SLOW_MS = 80
const LONG = 'Tokens arrive one by one, and the page shows each as soon as it comes. ' +
  'A reply that takes a while is still readable from its first word, and nothing waits for the last one. ' +
  'Should the connection drop, the client reconnects by itself and picks up after the last event it saw, ' +
  'so no word goes missing and none appears twice. A reload or a second tab joins the same conversation mid-sentence.'

let browser: Browser
const cleanups: Array<() => Promise<unknown>> = []

beforeAll(async () => {
  browser = await launchChromium()
}, 60_000)
afterAll(async () => browser.close())
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {})
})

async function gateway (env: Record<string, string> = {}): Promise<TestGateway & { page: string }> {
  const gw = await startGateway({ env })
  cleanups.push(async () => gw.close())
  return Object.assign(gw, { page: `${gw.origin.replace(/^ws/, 'http')}/` })
}

async function context (scheme: 'light' | 'dark' = 'light'): Promise<BrowserContext> {
  const ctx = await newContext(browser, scheme)
  cleanups.push(async () => ctx.close())
  return ctx
}

/** Opens the page in a new tab and waits until it is connected. */
async function openChat (ctx: BrowserContext, url: string): Promise<{ page: Page, errors: string[] }> {
  const page = await ctx.newPage()
  const errors = watchErrors(page)
  await page.goto(url)
  await connected(page)
  return { page, errors }
}

const connected = async (page: Page) => page.locator('#status[data-state="open"]').waitFor()
const composer = (page: Page) => page.getByRole('textbox', { name: 'Message' })
const stopButton = (page: Page) => page.getByRole('button', { name: 'Stop the reply' })
const sendButton = (page: Page) => page.getByRole('button', { name: 'Send' })
const replies = (page: Page) => page.locator('.message.assistant')
const userMessages = (page: Page) => page.locator('.message.user')

/** Types a message and sends it with Enter, once the page takes one (no reply running: Send is shown). */
async function say (page: Page, text: string): Promise<void> {
  await sendButton(page).waitFor({ state: 'visible' })
  await composer(page).fill(text)
  await composer(page).press('Enter')
}

/*
 * Functions below marked "in the page" run in Chromium (Playwright sends their source): they may
 * use only their arguments and the page's globals, reached through `globalThis` (the project's
 * TypeScript has no DOM library), and no string is evaluated (the page's CSP forbids eval).
 */
interface PageElement {
  readonly textContent: string | null
  getAttribute (name: string): string | null
  querySelector (selector: string): PageElement | null
}
interface Canvas {
  width: number
  height: number
  getContext (kind: '2d'): {
    fillStyle: unknown
    fillRect (x: number, y: number, w: number, h: number): void
    beginPath (): void
    arc (x: number, y: number, r: number, from: number, to: number): void
    moveTo (x: number, y: number): void
    lineTo (x: number, y: number): void
    fill (): void
    createLinearGradient (x0: number, y0: number, x1: number, y1: number): { addColorStop (at: number, color: string): void }
  }
  toDataURL (type: string): string
}
interface PageGlobals {
  readonly document: {
    createElement (tag: 'canvas'): Canvas
    querySelectorAll (selector: string): ArrayLike<PageElement>
    getElementById (id: string): (PageElement & { dataset: Record<string, string> }) | null
  }
  readonly MutationObserver: new (callback: () => void) => { observe (target: unknown, options: Record<string, unknown>): void }
  twStates?: string[]
}

/** Waits until reply `index` is streaming (aria-busy) and shows at least `chars` characters; returns them. */
async function streaming (page: Page, index: number, chars: number): Promise<string> {
  const handle = await page.waitForFunction(([i, n]) => { // in the page
    const reply = (globalThis as unknown as PageGlobals).document.querySelectorAll('.message.assistant')[i]
    const text = reply?.querySelector('.text')?.textContent ?? ''
    return reply !== undefined && reply.getAttribute('aria-busy') === 'true' && text.length >= n ? text : false
  }, [index, chars] as const)
  const text = await handle.jsonValue()
  return typeof text === 'string' ? text : ''
}

/** Waits until reply `index` is over and returns its text. */
async function finished (page: Page, index: number): Promise<string> {
  await page.waitForFunction((i) => { // in the page
    return (globalThis as unknown as PageGlobals).document.querySelectorAll('.message.assistant')[i]?.getAttribute('aria-busy') === 'false'
  }, index)
  return (await replies(page).nth(index).locator('.text').textContent()) ?? ''
}

/** A small picture (a sunset over hills), drawn by the browser, as PNG bytes: something to attach. */
async function picture (page: Page): Promise<Buffer> {
  const dataUrl = await page.evaluate(() => { // in the page
    const canvas = (globalThis as unknown as PageGlobals).document.createElement('canvas')
    canvas.width = 320
    canvas.height = 200
    const g = canvas.getContext('2d')
    const sky = g.createLinearGradient(0, 0, 0, 200)
    sky.addColorStop(0, '#6d5dfc')
    sky.addColorStop(1, '#ffb38a')
    g.fillStyle = sky
    g.fillRect(0, 0, 320, 200)
    g.fillStyle = '#ffe08a'
    g.beginPath()
    g.arc(220, 120, 34, 0, Math.PI * 2)
    g.fill()
    g.fillStyle = '#2f2a5a'
    g.beginPath()
    g.moveTo(0, 200)
    g.lineTo(0, 150)
    g.lineTo(90, 95)
    g.lineTo(170, 150)
    g.lineTo(250, 110)
    g.lineTo(320, 145)
    g.lineTo(320, 200)
    g.fill()
    return canvas.toDataURL('image/png')
  })
  return Buffer.from(dataUrl.slice(dataUrl.indexOf(',') + 1), 'base64')
}

/** Records every state the connection indicator shows, from now on. */
async function recordStates (page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => { // in the page
    const page = globalThis as unknown as PageGlobals
    const status = page.document.getElementById('status')
    if (status === null) throw new Error('no #status')
    const states = [status.dataset['state'] ?? '']
    page.twStates = states
    new page.MutationObserver(() => states.push(status.dataset['state'] ?? '')).observe(status, { attributes: true, attributeFilter: ['data-state'] })
  })
  return async () => page.evaluate(() => (globalThis as unknown as PageGlobals).twStates ?? []) // in the page
}

describe('the chat page', () => {
  it('streams a reply as it is written, with labelled controls and the conversation in the URL', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: LONG, tokenDelayMs: 25 }, { text: 'Run `npm start`, then **open** the page:\n\n- chat\n- reload\n\nThat is all.', tokenDelayMs: 5 })
    const ctx = await context()
    const { page, errors } = await openChat(ctx, gw.page)
    // Every control has an accessible name.
    await expect(page.getByRole('combobox', { name: 'Model' }).inputValue()).resolves.toBe('gpt-4o')
    expect(await page.getByRole('button', { name: 'Attach an image' }).isVisible()).toBe(true)
    expect(await page.getByRole('log', { name: 'Conversation' }).count()).toBe(1)
    expect(await sendButton(page).isDisabled()).toBe(true)
    await snap(page, 'empty')

    await say(page, 'How does streaming work?')
    const partial = await streaming(page, 0, 40) // seen while the reply is still being written
    expect(LONG.startsWith(partial)).toBe(true)
    expect(partial.length).toBeLessThan(LONG.length)
    expect(await userMessages(page).locator('.text').textContent()).toBe('How does streaming work?')
    expect(await stopButton(page).isVisible()).toBe(true)
    expect(await sendButton(page).isVisible()).toBe(false)
    await snap(page, 'streaming')

    expect(await finished(page, 0)).toBe(LONG)
    await sendButton(page).waitFor({ state: 'visible' }) // once response.done has arrived too
    const conversationId = new URL(page.url()).searchParams.get('conversation')
    expect(conversationId).toMatch(/^conv_/)
    expect(await page.locator('#conversation-id').textContent()).toBe(conversationId)

    // Replies are Markdown, built as elements (never parsed as HTML).
    await say(page, 'And now?')
    await finished(page, 1)
    const second = replies(page).nth(1)
    expect(await second.locator('code').textContent()).toBe('npm start')
    expect(await second.locator('strong').textContent()).toBe('open')
    expect(await second.locator('li').allTextContents()).toEqual(['chat', 'reload'])
    await snap(page, 'reply')
    expect(errors).toEqual([])
  }, TIMEOUT_MS)

  it('stops a reply with the stop button and with Escape', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: LONG, tokenDelayMs: SLOW_MS }, { text: LONG, tokenDelayMs: SLOW_MS })
    const ctx = await context()
    const { page, errors } = await openChat(ctx, gw.page)
    await say(page, 'Tell me everything.')
    await streaming(page, 0, 20)
    await stopButton(page).click()
    await replies(page).first().locator('.meta', { hasText: 'Stopped' }).waitFor()
    const stopped = await finished(page, 0)
    expect(LONG.startsWith(stopped)).toBe(true)
    expect(stopped.length).toBeLessThan(LONG.length)
    expect(await (await gw.sim.nextRequest()).ended).toBe('aborted')
    await sendButton(page).waitFor({ state: 'visible' }) // once response.done has arrived too
    await snap(page, 'stopped')

    await say(page, 'Again, please.')
    await streaming(page, 1, 20)
    await composer(page).press('Escape')
    await replies(page).nth(1).locator('.meta', { hasText: 'Stopped' }).waitFor()
    expect(await (await gw.sim.nextRequest()).ended).toBe('aborted')
    expect(errors).toEqual([])
  }, TIMEOUT_MS)

  it('resumes a reply after a reload mid-reply: all of it, once', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: LONG, tokenDelayMs: SLOW_MS })
    const ctx = await context()
    const { page, errors } = await openChat(ctx, gw.page)
    await say(page, 'Take your time.')
    await streaming(page, 0, 30)
    await snap(page, 'before-reload')
    await page.reload()
    await connected(page)
    await streaming(page, 0, 1) // the same reply, still being written, joined after the reload
    await snap(page, 'after-reload')
    expect(await finished(page, 0)).toBe(LONG)
    expect(await userMessages(page).count()).toBe(1)
    expect(await replies(page).count()).toBe(1)
    expect(await userMessages(page).locator('.text').textContent()).toBe('Take your time.')
    expect(gw.sim.requests).toHaveLength(1) // resumed, not generated again
    expect(errors).toEqual([])
  }, TIMEOUT_MS)

  it('shows one conversation in two tabs: each sees the other\'s messages and replies live, and either can stop them', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: LONG, tokenDelayMs: SLOW_MS }, { text: LONG, tokenDelayMs: SLOW_MS })
    const a = await openChat(await context('light'), gw.page)
    await say(a.page, 'Hello from tab A.')
    await streaming(a.page, 0, 20)
    const b = await openChat(await context('dark'), a.page.url())
    await streaming(b.page, 0, 1) // B joins the reply A asked for, mid-way
    expect(await userMessages(b.page).locator('.text').textContent()).toBe('Hello from tab A.')
    expect(await finished(a.page, 0)).toBe(LONG)
    expect(await finished(b.page, 0)).toBe(LONG)

    await say(b.page, 'And hello from tab B.')
    await streaming(a.page, 1, 20)
    expect(await userMessages(a.page).nth(1).locator('.text').textContent()).toBe('And hello from tab B.')
    await snap(a.page, 'tab-a')
    await snap(b.page, 'tab-b-dark')
    await stopButton(a.page).click() // A stops the reply B asked for
    await replies(b.page).nth(1).locator('.meta', { hasText: 'Stopped' }).waitFor()
    await replies(a.page).nth(1).locator('.meta', { hasText: 'Stopped' }).waitFor()
    expect(await replies(a.page).nth(1).locator('.text').textContent()).toBe(await replies(b.page).nth(1).locator('.text').textContent())
    expect(await replies(b.page).count()).toBe(2)
    expect([...a.errors, ...b.errors]).toEqual([])
  }, TIMEOUT_MS)

  it('completes a reply after its socket is killed: the client reconnects and resumes by itself', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: LONG, tokenDelayMs: 25 })
    const ctx = await context()
    const { page, errors } = await openChat(ctx, gw.page)
    const states = await recordStates(page)
    await say(page, 'Keep talking.')
    await streaming(page, 0, 30)
    for (const socket of gw.app.websocketServer.clients) socket.terminate() // as a network failure would
    expect(await finished(page, 0)).toBe(LONG)
    await connected(page)
    const seen = await states()
    expect(seen).toEqual(expect.arrayContaining(['open', 'reconnecting', 'connecting']))
    expect(seen.at(-1)).toBe('open')
    expect(await replies(page).count()).toBe(1)
    expect(gw.sim.requests).toHaveLength(1)
    expect(gw.log.lines.some((line) => line['msg'] === 'session attached' && line['resume'] === true)).toBe(true)
    await snap(page, 'reconnected')
    expect(errors).toEqual([])
  }, TIMEOUT_MS)

  it('shows tool calls as they happen, answers the page\'s own tool, and sends an attached image', async () => {
    const gw = await gateway()
    gw.sim.enqueue(
      { toolCalls: [{ name: 'calculate', arguments: '{"expression":"6*7"}' }], tokenDelayMs: 150 },
      { text: 'Six times seven is **42**.', tokenDelayMs: 20 },
      { toolCalls: [{ name: 'get_browser_context', arguments: '{}' }] },
      { text: 'Your browser told me its time zone.', tokenDelayMs: 5 },
      { text: 'A sunset over **rolling hills**: a violet sky fading to peach, and a pale sun low above the ridge. The outline of the hills is dark and simple, like a paper cut-out.', tokenDelayMs: 70 }
    )
    const ctx = await context()
    const { page, errors } = await openChat(ctx, gw.page)

    await say(page, 'What is 6 times 7?')
    const card = page.locator('.tool').first()
    await page.locator('.tool[data-state="running"]').waitFor() // shown while its arguments stream
    expect(await card.locator('.tool-name').textContent()).toBe('calculate')
    await page.locator('.tool[data-state="done"]').waitFor()
    expect(await finished(page, 0)).toBe('Six times seven is 42.')
    expect(JSON.parse((await card.locator('.tool-output').textContent()) ?? '')).toMatchObject({ result: 42 })

    await say(page, 'Where am I?')
    await page.locator('.tool[data-state="done"]').nth(1).waitFor()
    expect(await finished(page, 1)).toBe('Your browser told me its time zone.')
    const answered = gw.sim.requests[3]?.body.messages.findLast((m) => m.role === 'tool')
    expect(JSON.parse(String(answered?.content))).toMatchObject({ language: expect.any(String), time_zone: expect.any(String) })

    await page.locator('#file').setInputFiles({ name: 'sunset.png', mimeType: 'image/png', buffer: await picture(page) })
    await page.getByRole('button', { name: 'Remove image 1' }).waitFor()
    await say(page, 'What is in this picture?')
    await streaming(page, 2, 60)
    await snap(page, 'tools-and-image') // README's screenshot: docs/chat.png
    expect(await finished(page, 2)).toMatch(/^A sunset over rolling hills: .* paper cut-out\.$/)
    expect(await userMessages(page).nth(2).locator('img').getAttribute('src')).toMatch(/^data:image\/jpeg;base64,/)
    const sent = gw.sim.requests[4]?.body.messages.at(-1)
    expect(sent).toMatchObject({ role: 'user', content: [{ type: 'image_url', image_url: { url: expect.stringMatching(/^data:image\/jpeg;base64,/) } }, { type: 'text', text: 'What is in this picture?' }] })
    expect(await page.locator('.attachments li').count()).toBe(0)
    expect(errors).toEqual([])
  }, TIMEOUT_MS)

  it('says when a conversation no longer exists, and starts a new one', async () => {
    const gw = await gateway()
    const ctx = await context()
    const page = await ctx.newPage()
    const errors = watchErrors(page)
    await page.goto(`${gw.page}?conversation=conv_gone`)
    const alert = page.getByRole('alert').filter({ hasText: 'This conversation no longer exists' })
    await alert.waitFor()
    expect(await page.locator('#status').getAttribute('data-state')).toBe('closed')
    await snap(page, 'conversation-gone')
    await alert.getByRole('button', { name: 'Start a new chat' }).click()
    await connected(page)
    await page.waitForURL(/\?conversation=conv_/)
    expect(page.url()).not.toContain('conv_gone')
    expect(errors).toEqual([])
  }, TIMEOUT_MS)

  it('says why a reply failed, in the gateway\'s words', async () => {
    const gw = await gateway({ UPSTREAM_MAX_RETRIES: '0' })
    gw.sim.enqueue({ failure: { kind: 'status', status: 500 } })
    const ctx = await context()
    const { page, errors } = await openChat(ctx, gw.page)
    await say(page, 'Hello?')
    const alert = page.getByRole('alert').filter({ hasText: 'The reply failed:' })
    await alert.waitFor()
    expect(await alert.locator('p').textContent()).toBe('The reply failed: The upstream model provider failed or could not be reached')
    await sendButton(page).waitFor({ state: 'visible' })
    expect(errors).toEqual([])
  }, TIMEOUT_MS)

  it('asks for a key when the gateway needs one, then chats with it', async () => {
    const gw = await gateway({ GATEWAY_API_KEYS: 'sk-test-not-real:acme' })
    gw.sim.enqueue({ text: 'Authenticated.' })
    const ctx = await context()
    const page = await ctx.newPage()
    const errors = watchErrors(page)
    await page.goto(gw.page)
    const dialog = page.getByRole('dialog', { name: 'This gateway needs an API key' })
    await dialog.waitFor()
    await snap(page, 'key-dialog')
    await dialog.getByLabel('API key').fill('sk-test-not-real')
    await dialog.getByRole('button', { name: 'Connect' }).click()
    await connected(page)
    await say(page, 'Who am I?')
    expect(await finished(page, 0)).toBe('Authenticated.')
    expect(errors).toEqual([])
  }, TIMEOUT_MS)
})
