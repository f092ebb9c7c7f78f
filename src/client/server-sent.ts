/**
 * Server-sent events read off a response body, as the HTML standard's event-stream format says:
 * `field: value` lines, a blank line ends an event, `data` lines join with newlines, a line
 * starting with `:` is a comment, and CRLF, LF or CR end a line.
 */

/**
 * One event block of a stream. A block without `data` lines comes too (with `data` empty): the
 * server's `retry:` block is one.
 */
export interface ServerSentEvent {
  /** `message` unless the block names its type. */
  event: string
  /** Its `data` lines, joined with newlines. */
  data: string
  /** The event's id, when it carries one: where a stream resumes (`Last-Event-ID`). */
  id?: string
  /** The reconnection time the server asks for, in ms, when the block sets one. */
  retry?: number
}

/** The event blocks of a stream, in order, until the body ends. */
export async function* serverSentEvents(
  body: AsyncIterable<Uint8Array>,
): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder()
  let buffer = ''
  let block: ServerSentEvent = { event: 'message', data: '' }
  let data: string[] = []
  let fields = 0
  /** Takes one line; returns the block it ends, if any. */
  const take = (line: string): ServerSentEvent | undefined => {
    if (line === '') {
      const done = fields === 0 ? undefined : { ...block, data: data.join('\n') }
      block = { event: 'message', data: '' }
      data = []
      fields = 0
      return done
    }
    if (line.startsWith(':')) return undefined
    fields++
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') block.event = value
    else if (field === 'data') data.push(value)
    else if (field === 'id' && !value.includes('\0')) block.id = value
    else if (field === 'retry' && /^\d+$/.test(value)) block.retry = Number(value)
    return undefined
  }
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true })
    let end
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (buffer[end] === '\r' && end === buffer.length - 1) break
      const line = buffer.slice(0, end)
      buffer = buffer.slice(end + (buffer.startsWith('\r\n', end) ? 2 : 1))
      const done = take(line)
      if (done !== undefined) yield done
    }
  }
}
