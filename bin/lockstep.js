#!/usr/bin/env node
// The `lockstep` command. It runs the compiled CLI in dist/ (`npm run build`; `npm ci` and
// `npm pack` build it). LOCKSTEP_SOURCE=1 runs the TypeScript in src/ through tsx instead, with
// no build: the tests and the benchmarks set it, so the processes they spawn run the sources
// they test. tsx is a development dependency: an installed package has neither it nor src/.
import module from 'node:module'
import process from 'node:process'
import v8 from 'node:v8'

// Node 22 and later keep compiled code between runs; Node 20 has no such cache.
module.enableCompileCache?.()

let main, isLongRunning
if (process.env.LOCKSTEP_SOURCE === '1') {
  const { register } = await import('tsx/esm/api')
  register()
  ;({ main, isLongRunning } = await import('../src/cli/main.ts'))
} else {
  try {
    ;({ main, isLongRunning } = await import('../dist/cli/main.js'))
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('dist/cli/main.js')) {
      throw e
    }
    process.stderr.write(
      "lockstep: dist/ is missing: run 'npm run build' (or set LOCKSTEP_SOURCE=1 to run the sources)\n",
    )
    process.exit(1)
  }
}
const argv = process.argv.slice(2)
// A command that makes a few requests and exits: fetch parses HTTP in WebAssembly, and V8 would
// compile an optimised copy in the background that the exit then waits for (hundreds of ms on a
// busy machine). Baseline code serves a few requests as fast. The scheduler and the worker,
// which make many, keep the optimised parser.
if (!isLongRunning(argv[0])) v8.setFlagsFromString('--liftoff-only')
process.exitCode = await main(argv)
// The command has finished. An idle keep-alive connection of its HTTP client would hold the
// process open for a second or more: exit as soon as its output has been written.
process.stdout.write('', () => process.stderr.write('', () => process.exit()))
