/**
 * A TCP proxy a test can cut and restore: the network between a scheduler and its database.
 * Cut, it ends every connection through it and refuses new ones at once (as a database host
 * that restarts would); restored, it passes connections again.
 */
import { connect, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'

export class TcpProxy {
  private readonly server: Server
  private readonly sockets = new Set<Socket>()
  private cutOff = false
  port = 0
  /** Connections passed through so far. */
  passed = 0

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.server = createServer((inbound) => this.pass(inbound))
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as { port: number }).port
    return this
  }

  /** Ends every connection and refuses new ones. */
  cut(): void {
    this.cutOff = true
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
  }

  restore(): void {
    this.cutOff = false
  }

  async close(): Promise<void> {
    this.cut()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private pass(inbound: Socket): void {
    if (this.cutOff) {
      inbound.destroy()
      return
    }
    this.passed++
    const outbound = connect(this.targetPort, this.targetHost)
    for (const [a, b] of [
      [inbound, outbound],
      [outbound, inbound],
    ] as const) {
      this.sockets.add(a)
      a.pipe(b)
      a.on('error', () => b.destroy())
      a.on('close', () => {
        this.sockets.delete(a)
        b.destroy()
      })
    }
  }
}
