/**
 * Lockstep processes for the benchmarks: `bin/lockstep.js` started as a child with its stderr
 * ignored (shown with BENCH_STDERR=1), known once it prints its first line, and stopped
 * politely, then for good.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import type { LockstepClient } from '../src/client/client.ts'

/**
 * Starts `lockstep ARGS…` and resolves with its first line of output. `profileDir` writes a CPU
 * profile of the process there when it exits.
 */
export function startLockstep(
  args: string[],
  env: Record<string, string>,
  profileDir?: string,
): Promise<{ child: ChildProcess; line: string }> {
  const node = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir]
  const child = spawn(process.execPath, [...node, 'bin/lockstep.js', ...args], {
    stdio: ['ignore', 'pipe', process.env.BENCH_STDERR ? 'inherit' : 'ignore'],
    env: { ...process.env, ...env },
  })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf('\n')
      if (nl >= 0) resolve({ child, line: out.slice(0, nl) })
    })
    child.on('exit', (code) => reject(new Error(`lockstep ${args[0]} exited ${code}`)))
  })
}

/** Starts `lockstep server ARGS…` and resolves with the process and the URL it listens on. */
export async function startServer(
  args: string[],
  env: Record<string, string>,
  profileDir?: string,
): Promise<{ child: ChildProcess; url: string }> {
  const { child, line } = await startLockstep(['server', ...args], env, profileDir)
  return { child, url: /listening on (\S+)/.exec(line)![1]! }
}

/** SIGTERM, and SIGKILL if it has not exited within 5 s. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  const gone = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))])
  child.kill('SIGKILL')
}

/**
 * Waits for every order to succeed, reading each every `pollMs`; throws, naming the first failed
 * jobs and why, for an order that ends otherwise.
 */
export async function untilSucceeded(
  c: LockstepClient,
  orderIds: readonly string[],
  pollMs: number,
): Promise<void> {
  for (const orderId of orderIds) {
    for (;;) {
      const { fulfilment } = await c.order(orderId)
      if (fulfilment.state === 'succeeded') break
      if (fulfilment.state !== 'running') {
        const failed = (await c.jobs(orderId)).filter((j) => j.state === 'failed')
        const why = failed.slice(0, 3).map((j) => `${j.name}: ${j.reason ?? ''}`)
        throw new Error(`order ${orderId} ${fulfilment.state} (${why.join('; ')})`)
      }
      await new Promise((r) => setTimeout(r, pollMs))
    }
  }
}
