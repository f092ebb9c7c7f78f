#!/usr/bin/env node
// `npm run build` (and `prepare`, so `npm ci` and `npm pack` leave it built): the package as
// users install it. src/ compiles to dist/ as JavaScript with declaration files
// (tsconfig.build.json); the dashboard's browser files, which the server reads by path, and the
// SQLite writer thread, which the store starts by path, are copied beside the compiled code. dist/ is made afresh each time, so a source
// that was renamed or deleted leaves nothing behind in the package.
//
// `--if-stale` builds only when dist/ is missing or older than a file it is built from: what
// `npm start` and the `cli` bench run, so they never run yesterday's sources.
import { spawnSync } from 'node:child_process'
import { cpSync, readdirSync, rmSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import process from 'node:process'
import { URL, fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const at = (path) => join(root, path)

/**
 * The newest modification time of a file, or of a folder and anything under it, in ms. A
 * folder's own time changes when a file in it is added, renamed or deleted.
 */
function newest(path) {
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))))
}

if (process.argv.includes('--if-stale')) {
  const built = statSync(at('dist/cli/main.js'), { throwIfNoEntry: false })?.mtimeMs ?? 0
  const sources = ['src', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.js']
  if (Math.max(...sources.map((s) => newest(at(s)))) < built) process.exit(0)
  process.stderr.write('dist/ is older than the sources: building it\n')
}

rmSync(at('dist'), { recursive: true, force: true })
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
const compiled = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
  cwd: root,
  stdio: 'inherit',
})
if (compiled.status !== 0) process.exit(compiled.status ?? 1)
// The .d.ts beside graph-layout.js types it for the tests; the browser has no use for it.
cpSync(at('src/web'), at('dist/web'), {
  recursive: true,
  filter: (path) => !path.endsWith('.d.ts'),
})
// Plain JavaScript loaded by path beside the compiled code: the SQLite writer thread.
for (const file of ['store/sqlite-writer-thread.js']) cpSync(at(`src/${file}`), at(`dist/${file}`))
