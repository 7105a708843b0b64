// A small Markdown subset for replies, built as DOM nodes (never parsed as HTML, so a reply
// cannot inject markup): paragraphs, headings, lists, fenced code, inline code, bold, italic
// and http(s) links. It is re-run on the whole text as a reply streams; an unclosed code fence
// simply runs to the end until its closing line arrives.

const FENCE = /^\s*```\s*([\w+-]*)\s*$/
const HEADING = /^(#{1,6})\s+(.*)$/
const LIST_ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/
const INLINE = /(`[^`\n]+`)|\*\*([^*\n]+)\*\*|__([^_\n]+)__|\*([^*\s][^*\n]*)\*|(?<![\w])_([^_\s][^_\n]*)_(?![\w])|\[([^\]\n]+)\]\((https?:\/\/[^)\s]+)\)/g

/** Replaces `container`'s children with `text` rendered as Markdown. */
export function renderMarkdown (container, text) {
  container.replaceChildren(...blocks(text))
}

function blocks (text) {
  const nodes = []
  const lines = text.split('\n')
  let paragraph = []
  let list
  const flushParagraph = () => {
    if (paragraph.length > 0) nodes.push(element('p', inline(paragraph.join('\n'))))
    paragraph = []
  }
  const flushList = () => {
    if (list !== undefined) nodes.push(list)
    list = undefined
  }
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    const fence = FENCE.exec(line)
    if (fence !== null) {
      flushParagraph()
      flushList()
      const code = []
      while (++i < lines.length && !FENCE.test(lines[i])) code.push(lines[i])
      const codeElement = element('code', [code.join('\n')])
      if (fence[1] !== '') codeElement.dataset.lang = fence[1]
      nodes.push(element('pre', [codeElement]))
      continue
    }
    const heading = HEADING.exec(line)
    if (heading !== null) {
      flushParagraph()
      flushList()
      nodes.push(element(`h${Math.min(6, heading[1].length + 2)}`, inline(heading[2])))
      continue
    }
    const item = LIST_ITEM.exec(line)
    if (item !== null) {
      flushParagraph()
      const ordered = /\d/.test(item[1])
      if (list === undefined || (list.tagName === 'OL') !== ordered) {
        flushList()
        list = document.createElement(ordered ? 'ol' : 'ul')
        if (ordered && item[1] !== '1.' && item[1] !== '1)') list.start = Number.parseInt(item[1], 10)
      }
      list.append(element('li', inline(item[2])))
      continue
    }
    if (line.trim() === '') {
      flushParagraph()
      flushList()
      continue
    }
    flushList()
    paragraph.push(line)
  }
  flushParagraph()
  flushList()
  if (nodes.length === 0) nodes.push(document.createElement('p'))
  return nodes
}

/** Inline spans of one block: text nodes and code, strong, em and a elements. */
function inline (text) {
  const nodes = []
  let last = 0
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) nodes.push(text.slice(last, match.index))
    const [, code, bold, boldUnderscore, italic, italicUnderscore, label, href] = match
    if (code !== undefined) nodes.push(element('code', [code.slice(1, -1)]))
    else if (bold !== undefined || boldUnderscore !== undefined) nodes.push(element('strong', [bold ?? boldUnderscore]))
    else if (italic !== undefined || italicUnderscore !== undefined) nodes.push(element('em', [italic ?? italicUnderscore]))
    else {
      const link = element('a', [label])
      link.href = href
      link.target = '_blank'
      link.rel = 'noopener noreferrer'
      nodes.push(link)
    }
    last = match.index + match[0].length
  }
  if (last < text.length) nodes.push(text.slice(last))
  return nodes
}

function element (tag, children) {
  const node = document.createElement(tag)
  node.append(...children)
  return node
}
