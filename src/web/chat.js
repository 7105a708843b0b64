/* global location, history, Option, requestAnimationFrame, createImageBitmap */
// The Tokenwire chat page. Plain ES module, no framework: the client library (served at
// /client/) keeps the connection, the resume cursor and the replies; this file only renders
// its events. Everything is keyed by item id, so history replays, resumes and a second tab
// showing the same events render each message exactly once.
import { TokenwireClient, listModels, ModelsError, randomId, responseError } from '/client/index.js'
import { renderMarkdown } from '/markdown.js'

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id))
const log = $('log')
const main = $('main')
const input = /** @type {HTMLTextAreaElement} */ ($('message'))
const form = /** @type {HTMLFormElement} */ ($('composer'))
const sendButton = /** @type {HTMLButtonElement} */ ($('send'))
const stopButton = /** @type {HTMLButtonElement} */ ($('stop'))
const attachButton = $('attach')
const fileInput = /** @type {HTMLInputElement} */ ($('file'))
const attachmentList = $('attachments')
const modelSelect = /** @type {HTMLSelectElement} */ ($('model'))
const statusButton = $('status')
const statusText = $('status-text')
const notices = $('notices')
const welcome = $('welcome')
const keyDialog = /** @type {HTMLDialogElement} */ ($('key-dialog'))
const keyInput = /** @type {HTMLInputElement} */ ($('key-input'))

const STORAGE = { key: 'tokenwire.apiKey', model: 'tokenwire.model', clientId: 'tokenwire.clientId' }
/** Images are scaled to fit this many pixels on their longer side, then sent as JPEG data URLs. */
const MAX_IMAGE_SIDE = 1568
/** Data URLs above this many characters are scaled down further (MAX_ITEM_BYTES defaults to 1 MiB). */
const MAX_IMAGE_CHARS = 700_000
const MAX_ATTACHMENTS = 4

const realtimeUrl = new URL('/v1/realtime', location.href).toString()
const params = new URLSearchParams(location.search)
let conversationId = params.get('conversation') ?? undefined
let apiKey = localStorage.getItem(STORAGE.key) ?? undefined
// Per tab, kept across reloads: this tab goes on answering its own tool calls after a reload.
const clientId = sessionStorage.getItem(STORAGE.clientId) ?? randomId()
sessionStorage.setItem(STORAGE.clientId, clientId)

/** @type {TokenwireClient | undefined} */
let client
/** Rendered entries by item id, and tool cards by call id. */
const entries = new Map()
const tools = new Map()
/** Replies whose text changed since they were last drawn (drawn once per frame). */
const dirty = new Set()
/** Images waiting to be sent: data URLs. */
let attachments = []
let stickToBottom = true

// ---- start ---------------------------------------------------------------------------------

start().catch((err) => notify(`The page failed to start: ${err.message}`, { tone: 'bad' }))

async function start () {
  const models = await loadModels()
  if (models === undefined) return // waiting for a key
  fillModelPicker(models)
  connect()
}

/** The configured models; undefined (and the key dialog) when the gateway wants a key. */
async function loadModels () {
  try {
    return (await listModels(realtimeUrl, apiKey === undefined ? {} : { apiKey })).map((model) => model.id)
  } catch (err) {
    if (err instanceof ModelsError && err.status === 401) {
      askForKey(apiKey === undefined ? undefined : 'The key was refused. Enter another one.')
      return undefined
    }
    notify('Could not list the models; using the gateway default.', { tone: 'bad' })
    return []
  }
}

function fillModelPicker (models) {
  const saved = localStorage.getItem(STORAGE.model)
  modelSelect.replaceChildren(...models.map((id) => new Option(id, id)))
  if (models.length === 0) modelSelect.append(new Option('Default model', ''))
  if (saved !== null && models.includes(saved)) modelSelect.value = saved
  modelSelect.disabled = models.length < 2
}

function connect () {
  client?.close()
  const model = modelSelect.value === '' ? undefined : modelSelect.value
  client = new TokenwireClient({
    url: realtimeUrl,
    clientId,
    ...(apiKey === undefined ? {} : { apiKey }),
    ...(model === undefined ? {} : { model }),
    ...(conversationId === undefined ? {} : { conversationId })
  })
  // A client-side tool: the model may ask this browser for its locale and time.
  client.tools.register('get_browser_context', {
    description: "The user's language, time zone and local time, from their browser",
    parameters: { type: 'object', properties: {} }
  }, () => ({
    language: navigator.language,
    time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    local_time: new Date().toString()
  }))
  client.on('status', showStatus)
  client.on('conversation', (id) => {
    conversationId = id
    const url = new URL(location.href)
    url.searchParams.set('conversation', id)
    history.replaceState(null, '', url)
    $('conversation-id').textContent = id
    $('conversation-label').hidden = false
  })
  client.on('event', render)
  client.on('error', showError)
  client.connect().catch(() => {}) // failures are shown by the status and error handlers
}

// ---- connection state ------------------------------------------------------------------------

function showStatus (status) {
  statusButton.dataset.state = status.state
  let text
  switch (status.state) {
    case 'open': text = 'Connected'; break
    case 'connecting': text = status.attempt === 0 ? 'Connecting…' : `Reconnecting (attempt ${status.attempt + 1})…`; break
    case 'reconnecting': text = status.retryInMs === undefined ? 'Reconnecting…' : `Reconnecting in ${Math.max(1, Math.round(status.retryInMs / 1000))} s…`; break
    case 'closed': text = 'Disconnected'; break
    default: text = 'Idle'
  }
  statusText.textContent = text
  statusButton.title = status.state === 'open' ? 'Connected to the gateway' : `${text} Click to reconnect now.`
  refreshBusy()
}

statusButton.addEventListener('click', () => {
  if (client === undefined || client.status.state === 'open') return
  clearNotices('connection')
  client.reconnect()
})

/** Errors from the gateway and from the connection, each in words a person can act on. */
function showError (error) {
  if (error.code === 'invalid_api_key') return askForKey(apiKey === undefined ? undefined : 'The key was refused. Enter another one.')
  if (error.fatal) {
    if (error.closeCode === 4504) {
      return notify('This conversation no longer exists (it expired, or belongs to another key).', { tone: 'bad', group: 'connection', action: { label: 'Start a new chat', run: newChat } })
    }
    const detail = error.closeCode === 1009 ? 'A message was larger than the gateway accepts.' : error.message
    return notify(`Disconnected: ${detail}`, { tone: 'bad', group: 'connection', action: { label: 'Reconnect', run: () => client?.reconnect() } })
  }
  switch (error.code) {
    case 'conversation_not_found': return // the close that follows says it
    case 'resume_cursor_expired': return notify('Part of the conversation was too old to resume; it was reloaded from history.', { timeoutMs: 6000 })
    case 'conversation_already_has_active_response': return notify('A reply is already being written; wait for it or stop it.', { timeoutMs: 6000 })
    case 'item_too_large':
    case 'image_too_large': return notify('That message is too large for the gateway. Try a smaller image.', { tone: 'bad', timeoutMs: 10_000 })
    default: return notify(error.message, { tone: 'bad', timeoutMs: 10_000 })
  }
}

function askForKey (reason) {
  statusButton.dataset.state = 'closed'
  statusText.textContent = 'Key needed'
  if (reason !== undefined) $('key-reason').textContent = reason
  keyInput.value = ''
  if (!keyDialog.open) keyDialog.showModal()
}

keyDialog.addEventListener('close', () => {
  const key = keyInput.value.trim()
  if (key === '') {
    notify('This gateway needs an API key to chat.', { tone: 'bad', group: 'connection', action: { label: 'Enter a key', run: () => askForKey() } })
    return
  }
  apiKey = key
  localStorage.setItem(STORAGE.key, key)
  start().catch((err) => notify(err.message, { tone: 'bad' }))
})

// ---- notices ---------------------------------------------------------------------------------

/** Shows a notice; `group` replaces an earlier one of the same group. */
function notify (message, { tone = 'info', group, timeoutMs, action } = {}) {
  if (group !== undefined) clearNotices(group)
  const box = el('div', { class: `notice ${tone}`, role: tone === 'bad' ? 'alert' : 'status' })
  if (group !== undefined) box.dataset.group = group
  box.append(el('p', {}, message))
  if (action !== undefined) {
    const button = el('button', { type: 'button' }, action.label)
    button.addEventListener('click', () => { box.remove(); action.run() })
    box.append(button)
  }
  const dismiss = el('button', { type: 'button', class: 'dismiss', 'aria-label': 'Dismiss' }, '×')
  dismiss.addEventListener('click', () => box.remove())
  box.append(dismiss)
  notices.append(box)
  if (timeoutMs !== undefined) setTimeout(() => box.remove(), timeoutMs)
}

function clearNotices (group) {
  for (const box of notices.querySelectorAll(`[data-group="${group}"]`)) box.remove()
}

// ---- rendering -------------------------------------------------------------------------------

/** One server event into the page. */
function render (event) {
  switch (event.type) {
    case 'conversation.item.added':
    case 'conversation.item.done':
      return renderItem(event.item)
    case 'response.created':
      return refreshBusy()
    case 'response.output_item.added':
      return renderItem(event.item, event.response_id)
    case 'response.output_text.delta':
      return appendText(event.item_id, event.delta)
    case 'response.function_call_arguments.delta': {
      const card = tools.get(event.call_id)
      if (card !== undefined) card.args.textContent += event.delta
      return scrollSoon()
    }
    case 'response.done':
      return responseDone(event.response)
    default:
  }
}

function renderItem (item, responseId) {
  switch (item.type) {
    case 'message':
      if (item.role === 'user') return renderUser(item)
      if (item.role === 'assistant') return renderAssistant(item, responseId)
      return
    case 'function_call':
    case 'mcp_call':
      return renderCall(item)
    case 'function_call_output':
      return renderOutput(item)
    default:
  }
}

function renderUser (item) {
  const known = entries.get(item.id)
  if (known !== undefined) {
    known.node.classList.remove('pending')
    return
  }
  const texts = item.content.filter((part) => part.type === 'input_text').map((part) => part.text ?? '')
  const images = item.content.filter((part) => part.type === 'input_image' && part.image_url).map((part) => part.image_url)
  addUser(item.id, texts.join('\n'), images, false)
}

function addUser (id, text, images, pending) {
  const bubble = el('div', { class: 'bubble' })
  if (images.length > 0) bubble.append(el('div', { class: 'images' }, ...images.map((src, i) => el('img', { src, alt: `Attached image ${i + 1}` }))))
  if (text !== '') bubble.append(el('div', { class: 'text' }, text))
  const node = el('li', { class: `message user${pending ? ' pending' : ''}` }, el('span', { class: 'visually-hidden' }, 'You said:'), bubble)
  entries.set(id, { node })
  append(node)
  return node
}

function renderAssistant (item, responseId) {
  let entry = entries.get(item.id)
  if (entry === undefined) {
    const body = el('div', { class: 'text' })
    const node = el('li', { class: 'message assistant', 'aria-busy': 'true' },
      el('span', { class: 'visually-hidden' }, 'Assistant:'),
      el('div', { class: 'bubble' }, body))
    entry = { kind: 'assistant', node, body, raw: '', drawn: '', responseId }
    entries.set(item.id, entry)
    renderMarkdown(body, '')
    append(node)
  }
  const status = item.status ?? 'in_progress'
  if (status === 'in_progress') return
  // Complete or cut short: the item's text is the truth (a resume may have joined mid-way).
  const full = item.content.map((part) => part.text ?? part.transcript ?? '').join('')
  // Drawn now, not at the next frame: the final text is in place when aria-busy says so.
  dirty.delete(entry)
  if (entry.raw !== full || entry.drawn !== full) {
    entry.raw = full
    entry.drawn = full
    renderMarkdown(entry.body, full)
  }
  entry.node.setAttribute('aria-busy', 'false')
  if (status === 'incomplete') markIncomplete(entry, 'Stopped')
}

function appendText (itemId, delta) {
  const entry = entries.get(itemId)
  if (entry === undefined) return
  entry.raw += delta
  redraw(entry)
}

/** Re-renders replies whose text changed, at most once a frame however fast tokens come. */
function redraw (entry) {
  if (dirty.size === 0) {
    requestAnimationFrame(() => {
      for (const changed of dirty) {
        renderMarkdown(changed.body, changed.raw)
        changed.drawn = changed.raw
      }
      dirty.clear()
      scrollSoon()
    })
  }
  dirty.add(entry)
}

function markIncomplete (entry, words, bad = false) {
  if (entry.node.querySelector('.meta') !== null) return
  entry.node.append(el('div', { class: `meta${bad ? ' bad' : ''}` }, words))
}

function renderCall (item) {
  let card = tools.get(item.call_id ?? item.id)
  if (card === undefined) {
    const args = el('pre', { class: 'tool-args' })
    const output = el('pre', { class: 'tool-output' })
    const state = el('span', { class: 'tool-state' }, 'running')
    const inline = el('span', { class: 'tool-args-inline' })
    const details = el('details', {},
      el('summary', {}, el('span', { class: 'visually-hidden' }, 'Tool call'), el('span', { class: 'tool-name' }, item.name ?? 'tool'), inline, state),
      el('div', { class: 'tool-body' }, el('div', { class: 'label' }, 'Arguments'), args, el('div', { class: 'label' }, 'Result'), output))
    const node = el('li', { class: 'tool', 'data-state': 'running' }, details)
    card = { node, args, output, state, inline }
    tools.set(item.call_id ?? item.id, card)
    entries.set(item.id, card)
    append(node)
  }
  if (item.arguments) {
    card.args.textContent = item.arguments
    card.inline.textContent = item.arguments
  }
  if (item.type === 'mcp_call' && (item.output || item.error)) {
    setToolResult(card, item.output ?? JSON.stringify(item.error), item.error ? 'failed' : 'done')
  } else if (item.status === 'incomplete') {
    setToolResult(card, 'Not run: the reply was stopped.', 'failed')
  }
}

function renderOutput (item) {
  const card = tools.get(item.call_id)
  if (card === undefined) return
  setToolResult(card, item.output, /"error"\s*:/.test(item.output) ? 'failed' : 'done')
}

function setToolResult (card, output, state) {
  card.output.textContent = prettyJson(output)
  card.state.textContent = state
  card.node.dataset.state = state
  scrollSoon()
}

function responseDone (response) {
  refreshBusy()
  for (const item of response.output ?? []) {
    const entry = entries.get(item.id)
    if (entry === undefined || item.type !== 'message') continue
    entry.node.setAttribute('aria-busy', 'false')
    if (response.status === 'cancelled') markIncomplete(entry, 'Stopped')
  }
  if (response.status === 'failed' || response.status === 'incomplete') {
    const reason = responseError(response)?.message ?? response.status
    const words = response.status === 'failed' ? `The reply failed: ${reason}` : `The reply was cut short: ${reason}`
    const last = [...(response.output ?? [])].reverse().map((item) => entries.get(item.id)).find((entry) => entry?.kind === 'assistant')
    if (last !== undefined) markIncomplete(last, words, response.status === 'failed')
    else notify(words, { tone: 'bad', timeoutMs: 10_000 })
  }
}

function append (node) {
  welcome.hidden = true
  log.append(node)
  scrollSoon()
}

let scrollPending = false
function scrollSoon () {
  if (!stickToBottom || scrollPending) return
  scrollPending = true
  requestAnimationFrame(() => {
    scrollPending = false
    main.scrollTop = main.scrollHeight
  })
}
main.addEventListener('scroll', () => {
  stickToBottom = main.scrollHeight - main.scrollTop - main.clientHeight < 80
}, { passive: true })

// ---- composing -------------------------------------------------------------------------------

/** Replies this tab asked for that are not over (a turn with tool calls spans several responses). */
let openReplies = 0
let busy = false
/** Busy while a reply is generated in the conversation (from any tab) or one of ours is not over. */
function refreshBusy () {
  busy = openReplies > 0 || client?.activeResponseId !== undefined
  stopButton.hidden = !busy
  sendButton.hidden = busy
  updateSendButton()
}

function updateSendButton () {
  sendButton.disabled = input.value.trim() === '' && attachments.length === 0
}

form.addEventListener('submit', (event) => {
  event.preventDefault()
  send()
})

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault()
    send()
  } else if (event.key === 'Escape' && busy) {
    event.preventDefault()
    stop()
  }
})
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && busy && event.target !== input) stop()
})

input.addEventListener('input', () => {
  input.style.height = 'auto'
  input.style.height = `${Math.min(input.scrollHeight, 192)}px`
  updateSendButton()
})

stopButton.addEventListener('click', () => {
  stop()
  input.focus()
})

$('new-chat').addEventListener('click', newChat)

modelSelect.addEventListener('change', () => {
  localStorage.setItem(STORAGE.model, modelSelect.value)
  client?.updateSession({ model: modelSelect.value })
})

function send () {
  const text = input.value.trim()
  if (client === undefined || busy || (text === '' && attachments.length === 0)) return
  const parts = [
    ...attachments.map((url) => ({ type: 'input_image', image_url: url })),
    ...(text === '' ? [] : [{ type: 'input_text', text }])
  ]
  const reply = client.send(parts)
  if (reply.inputItemId !== undefined) addUser(reply.inputItemId, text, attachments, true)
  stickToBottom = true
  openReplies++
  refreshBusy()
  reply.done.then((result) => {
    openReplies--
    refreshBusy()
    const entry = reply.inputItemId === undefined ? undefined : entries.get(reply.inputItemId)
    if (result.status !== 'failed' || reply.responseIds.length > 0 || entry === undefined) return
    // Refused before any reply started: say so under the message.
    const sent = !entry.node.classList.contains('pending')
    entry.node.classList.remove('pending')
    markIncomplete(entry, `${sent ? 'No reply' : 'Not sent'}: ${result.error?.message ?? 'failed'}`, true)
  })
  input.value = ''
  input.style.height = ''
  attachments = []
  renderAttachments()
}

function stop () {
  client?.cancel()
}

function newChat () {
  location.assign(location.pathname)
}

// ---- images ----------------------------------------------------------------------------------

attachButton.addEventListener('click', () => fileInput.click())
fileInput.addEventListener('change', () => {
  addImages([...fileInput.files ?? []])
  fileInput.value = ''
})
input.addEventListener('paste', (event) => {
  const files = [...event.clipboardData?.files ?? []].filter((file) => file.type.startsWith('image/'))
  if (files.length > 0) addImages(files)
})
form.addEventListener('dragover', (event) => {
  event.preventDefault()
  form.classList.add('drop-target')
})
form.addEventListener('dragleave', () => form.classList.remove('drop-target'))
form.addEventListener('drop', (event) => {
  event.preventDefault()
  form.classList.remove('drop-target')
  addImages([...event.dataTransfer?.files ?? []].filter((file) => file.type.startsWith('image/')))
})

async function addImages (files) {
  for (const file of files.slice(0, MAX_ATTACHMENTS - attachments.length)) {
    try {
      attachments.push(await downscale(file))
    } catch {
      notify(`${file.name} could not be read as an image.`, { tone: 'bad', timeoutMs: 6000 })
    }
  }
  renderAttachments()
  input.focus()
}

/** The image as a JPEG data URL that fits MAX_IMAGE_SIDE and, by lowering the quality, MAX_IMAGE_CHARS. */
async function downscale (file) {
  const bitmap = await createImageBitmap(file)
  const scale = Math.min(1, MAX_IMAGE_SIDE / Math.max(bitmap.width, bitmap.height))
  const canvas = document.createElement('canvas')
  canvas.width = Math.round(bitmap.width * scale)
  canvas.height = Math.round(bitmap.height * scale)
  canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height)
  bitmap.close()
  let url = ''
  for (const quality of [0.85, 0.7, 0.55, 0.4]) {
    url = canvas.toDataURL('image/jpeg', quality)
    if (url.length <= MAX_IMAGE_CHARS) break
  }
  return url
}

function renderAttachments () {
  attachmentList.replaceChildren(...attachments.map((url, index) => {
    const remove = el('button', { type: 'button', 'aria-label': `Remove image ${index + 1}` }, '×')
    remove.addEventListener('click', () => {
      attachments.splice(index, 1)
      renderAttachments()
      input.focus()
    })
    return el('li', {}, el('img', { src: url, alt: `Image ${index + 1} to send` }), remove)
  }))
  attachmentList.hidden = attachments.length === 0
  updateSendButton()
}

// ---- helpers ---------------------------------------------------------------------------------

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
function el (tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value)
  node.append(...children)
  return node
}

function prettyJson (text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    return text
  }
}

updateSendButton()
input.focus()
