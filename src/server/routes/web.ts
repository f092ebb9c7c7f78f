/**
 * The dashboard: the files of `src/web/` at `/` and `/ui/…`, and the few browser modules it uses
 * (Preact, its hooks, htm, dagre) at `/ui/vendor/…`, straight from node_modules. No build step:
 * the browser loads the ES modules as they are, bare names resolved by the page's import map.
 *
 * Invariants: only files named here are served, read once at start into memory — a request
 * path is a key into that table, never a path on disk, so no `..` reaches the file system. The
 * files are public (they hold no data; every datum comes from the API with the caller's token).
 * The page carries a strict Content-Security-Policy: scripts only from this origin plus the one
 * inline import map, by its hash; no inline style, no frames, no forms.
 *
 * These routes are hidden from the OpenAPI document: they are not part of the API.
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply } from 'fastify'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
}

/** The browser modules the page may load, by the name it asks for: package and file in it. */
const VENDOR: Record<string, [string, string]> = {
  'preact.mjs': ['preact', 'dist/preact.module.js'],
  'hooks.mjs': ['preact', 'hooks/dist/hooks.module.js'],
  'htm.mjs': ['htm', 'dist/htm.module.js'],
  'dagre.mjs': ['@dagrejs/dagre', 'dist/dagre.esm.js'],
}

/**
 * A file inside an installed package, found where Node would look for the package. Not through
 * `require.resolve(file)`: packages' `exports` hide their browser builds from Node.
 */
function packageFile(pkg: string, file: string): string {
  const require = createRequire(import.meta.url)
  for (const dir of require.resolve.paths(pkg) ?? []) {
    if (existsSync(join(dir, pkg, 'package.json'))) return join(dir, pkg, file)
  }
  throw new Error(`the dashboard needs the package ${pkg}; it is not installed`)
}

interface File {
  body: Buffer
  type: string
}

/** The folder of the dashboard's files. */
export const webDir = fileURLToPath(new URL('../../web/', import.meta.url))

/**
 * The Content-Security-Policy of the page: scripts from this origin and the inline import map
 * whose text hashes to `importMapHash`.
 */
export function contentSecurityPolicy(importMapHash: string): string {
  return [
    "default-src 'self'",
    `script-src 'self' 'sha256-${importMapHash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ')
}

/** The text of the page's one inline script, its import map, exactly as the browser hashes it. */
export function importMapOf(html: string): string {
  const m = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)
  if (m === null) throw new Error('src/web/index.html has no <script type="importmap">')
  return m[1]!
}

/** Every file the dashboard serves, by its URL path. */
function readFiles(): Map<string, File> {
  const files = new Map<string, File>()
  const walk = (dir: string, prefix: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name), `${prefix}${entry.name}/`)
      else if (TYPES[extname(entry.name)] !== undefined && entry.name !== 'index.html') {
        const body = readFileSync(join(dir, entry.name))
        files.set(`/ui/${prefix}${entry.name}`, { body, type: TYPES[extname(entry.name)]! })
      }
    }
  }
  walk(webDir, '')
  for (const [name, [pkg, file]] of Object.entries(VENDOR)) {
    files.set(`/ui/vendor/${name}`, {
      body: readFileSync(packageFile(pkg, file)),
      type: TYPES['.mjs']!,
    })
  }
  return files
}

export function webRoutes({ app }: { app: FastifyInstance }): void {
  const html = readFileSync(join(webDir, 'index.html'))
  const hash = createHash('sha256')
    .update(importMapOf(html.toString('utf8')))
    .digest('base64')
  const csp = contentSecurityPolicy(hash)
  const files = readFiles()

  const send = (reply: FastifyReply, file: File) =>
    reply
      .header('content-type', file.type)
      .header('content-security-policy', csp)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      // Read at start: a new version arrives with a restart; the browser asks again each load.
      .header('cache-control', 'no-cache')
      .send(file.body)

  app.get('/', { schema: { hide: true } }, (_request, reply) =>
    send(reply, { body: html, type: TYPES['.html']! }),
  )
  app.get('/ui/*', { schema: { hide: true } }, (request, reply) => {
    const file = files.get(request.url.split('?')[0]!)
    if (file === undefined) {
      return reply.code(404).send({
        error: { code: 'NOT_FOUND', message: `no dashboard file ${request.url}` },
      })
    }
    return send(reply, file)
  })
}
