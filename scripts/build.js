#!/usr/bin/env node
// `npm run build` (and `prepare`, so `npm ci` and `npm pack` leave it built): the package as
// users install it. src/ compiles to dist/ as JavaScript with declaration files
// (tsconfig.build.json); the dashboard's browser files, which the server reads by path, are
// copied beside the compiled server as they are. dist/ is made afresh each time, so a source
// that was renamed or deleted leaves nothing behind in the package.
import { spawnSync } from 'node:child_process'
import { cpSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import process from 'node:process'
import { URL, fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const at = (path) => fileURLToPath(new URL(`../${path}`, import.meta.url))

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
