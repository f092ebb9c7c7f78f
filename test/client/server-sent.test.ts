/** The event-stream format as the HTML standard reads it, whatever the chunks it arrives in. */
import { describe, expect, it } from 'vitest'
import { serverSentEvents } from '../../src/client/server-sent.ts'
import type { ServerSentEvent } from '../../src/client/server-sent.ts'

async function read(chunks: string[]): Promise<ServerSentEvent[]> {
  const encoder = new TextEncoder()
  const body = chunks.map((c) => encoder.encode(c))
  const out: ServerSentEvent[] = []
  for await (const e of serverSentEvents(ReadableStream.from(body))) out.push(e)
  return out
}

describe('server-sent events', () => {
  it.each([
    [
      'one event',
      ['id: 7\nevent: job:ready\ndata: {"a":1}\n\n'],
      [{ id: '7', event: 'job:ready', data: '{"a":1}' }],
    ],
    [
      'CRLF line ends, split between chunks',
      ['event: x\r', '\ndata: 1\r\n\r\n'],
      [{ event: 'x', data: '1' }],
    ],
    [
      'data lines joined, a comment skipped',
      [': hi\ndata: a\ndata:b\n\n'],
      [{ event: 'message', data: 'a\nb' }],
    ],
    [
      'a retry block, then an event cut mid-line',
      ['retry: 1000\n\nda', 'ta: z\n\n'],
      [
        { event: 'message', data: '', retry: 1000 },
        { event: 'message', data: 'z' },
      ],
    ],
    [
      'an unfinished block at the end is dropped',
      ['data: done\n\ndata: half\n'],
      [{ event: 'message', data: 'done' }],
    ],
  ])('%s', async (_name, chunks, expected) => {
    expect(await read(chunks)).toEqual(expected)
  })
})
