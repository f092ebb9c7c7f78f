/**
 * The worker's heartbeats over kept-alive HTTP connections of its own. A worker sends thousands
 * of heartbeats a second under load; `fetch` makes an AbortSignal, a DOMException and a stream
 * for each, which cost the worker more CPU than the jobs of a no-op workload. `node:http` with a
 * keep-alive agent sends the same request with none of that. The answer and its errors are the
 * client's: a refusal is the server's {@link LockstepError}, an unreachable scheduler says so.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { errorFromResponse, unreachable } from '../client/client.ts'
import type { HeartbeatInput, HeartbeatReply } from '../core/protocol.ts'

export class HeartbeatChannel {
  private readonly url: URL
  private readonly server: string
  private readonly authorization: string | undefined
  private readonly agent: HttpAgent
  private readonly send: typeof httpRequest

  constructor(url: string, token: string | undefined) {
    this.server = url.replace(/\/+$/, '')
    this.url = new URL(this.server)
    this.authorization = token === undefined ? undefined : `Bearer ${token}`
    const https = this.url.protocol === 'https:'
    this.agent = https ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true })
    this.send = https ? httpsRequest : httpRequest
  }

  /** One heartbeat: resolves with the scheduler's answer, once all of it is stored. */
  heartbeat(workerId: string, body: HeartbeatInput, signal?: AbortSignal): Promise<HeartbeatReply> {
    const payload = JSON.stringify(body)
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
    }
    if (this.authorization !== undefined) headers.authorization = this.authorization
    const base = this.url.pathname.replace(/\/+$/, '')
    return new Promise((resolve, reject) => {
      const req = this.send(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname,
          port: this.url.port,
          method: 'POST',
          path: `${base}/v1/targets/${encodeURIComponent(workerId)}/heartbeat`,
          headers,
          agent: this.agent,
          signal,
        },
        (res) => {
          readAll(res).then((text) => {
            const status = res.statusCode ?? 500
            if (status >= 200 && status < 300) {
              resolve(JSON.parse(text) as HeartbeatReply)
            } else {
              const retryAfter = res.headers['retry-after']
              reject(errorFromResponse(status, text, retryAfter ?? null))
            }
          }, reject)
        },
      )
      req.on('error', (e) => reject(signal?.aborted === true ? e : unreachable(this.server, e)))
      req.end(payload)
    })
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy()
  }
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    res.on('data', (c: Buffer) => chunks.push(c))
    res.on('end', () =>
      resolve(chunks.length === 1 ? chunks[0]!.toString() : Buffer.concat(chunks).toString()),
    )
    res.on('error', reject)
  })
}
