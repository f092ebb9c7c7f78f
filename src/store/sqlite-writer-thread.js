// @ts-check
/**
 * The SQLite store's writer: a worker thread that owns the connection every commit goes through,
 * so a transaction and its fsync never block the scheduler's event loop. Plain JavaScript, so
 * that it starts the same from the sources and from the compiled package.
 *
 * It is given the statements once (`workerData.statements`: SQL, the width of a row, whether it
 * runs over many rows at once, its `{rows}` becoming `(?, …), (?, …)` in chunks of up to 64, and
 * which columns hold ids), then one message per commit: `{ id, token, retried, steps }`, each step
 * `[statement, values]`, the rows' values one after another. It answers `{ id }` once the
 * transaction is committed, or `{ id, error: { name, message, code } }` when it rolled back. Ids
 * come as text and are bound as 16 bytes; a job row's spec, sent as its text, is stored once and
 * replaced by its id.
 */
import { Buffer } from 'node:buffer'
import { parentPort, workerData } from 'node:worker_threads'
import Database from 'better-sqlite3'

/** @typedef {{ sql: string, width: number, bulk?: true, ids?: number[], spec?: number }} StatementSpec */
/** @typedef {[number, unknown[]]} Step */

const CHUNK = 64
const { path, synchronous, busyTimeoutMs, statements, specs } =
  /** @type {{ path: string, synchronous: string, busyTimeoutMs: number, statements: StatementSpec[], specs: { insert: string, id: string, lastToken: string, setToken: string } }} */ (
    workerData
  )

const db = new Database(path)
db.pragma('journal_mode = WAL')
db.pragma(`synchronous = ${synchronous}`)
db.pragma(`busy_timeout = ${busyTimeoutMs}`)
db.pragma('foreign_keys = OFF')

/** Prepared statements by index, and by row count for statements over many rows. */
const single = new Map()
const bulk = new Map()
const specInsert = db.prepare(specs.insert)
const specId = db.prepare(specs.id).pluck()
const lastToken = db.prepare(specs.lastToken).pluck()
const setToken = db.prepare(specs.setToken)
/** Spec ids by text; forgotten after a rollback, whose ids may name rows never stored. */
const specIds = new Map()

/** @param {string} body @param {string} hash */
function idOfSpec(body, hash) {
  let id = specIds.get(body)
  if (id === undefined) {
    specInsert.run(hash, body)
    id = Number(specId.get(hash))
    if (specIds.size >= 50_000) specIds.clear()
    specIds.set(body, id)
  }
  return id
}

/**
 * An id's 16 bytes from its text (`xxxxxxxx-xxxx-…`); the scheduler checked it when it was made.
 * @param {string} id
 */
function idBytes(id) {
  return Buffer.from(
    id.slice(0, 8) + id.slice(9, 13) + id.slice(14, 18) + id.slice(19, 23) + id.slice(24),
    'hex',
  )
}

/** @param {number} index @param {number} n */
function statement(index, n) {
  const s = statements[index]
  if (s.bulk !== true) {
    let st = single.get(index)
    if (st === undefined) single.set(index, (st = db.prepare(s.sql)))
    return st
  }
  const key = index * 1000 + n
  let st = bulk.get(key)
  if (st === undefined) {
    const row = `(${Array.from({ length: s.width }, () => '?').join(', ')})`
    st = db.prepare(s.sql.replace('{rows}', Array.from({ length: n }, () => row).join(', ')))
    bulk.set(key, st)
  }
  return st
}

/** @param {Step} step */
function run([index, values]) {
  const s = statements[index]
  const width = s.width
  for (const column of s.ids ?? []) {
    for (let i = column; i < values.length; i += width) {
      const id = values[i]
      if (id !== null) values[i] = idBytes(/** @type {string} */ (id))
    }
  }
  if (s.spec !== undefined) {
    // The spec column holds [text, digest] until here.
    for (let i = s.spec; i < values.length; i += width) {
      const [body, hash] = /** @type {[string, string]} */ (values[i])
      values[i] = idOfSpec(body, hash)
    }
  }
  if (s.bulk !== true) {
    const st = statement(index, 1)
    for (let i = 0; i < values.length; i += width) st.run(values.slice(i, i + width))
    return
  }
  const step = CHUNK * width
  for (let i = 0; i < values.length; i += step) {
    const chunk = values.slice(i, i + step)
    statement(index, chunk.length / width).run(chunk)
  }
}

const write = db.transaction(
  /** @param {{ token?: string, retried?: boolean, steps: Step[] }} batch */
  (batch) => {
    // A batch tried again is written only if its first try did not land.
    if (batch.retried === true && lastToken.get() === batch.token) return
    if (batch.token !== undefined) setToken.run(batch.token)
    for (const step of batch.steps) run(step)
  },
)

parentPort?.on('message', (/** @type {any} */ message) => {
  if (message.close === true) {
    db.close()
    parentPort?.postMessage({ closed: true })
    return
  }
  try {
    write(message)
    parentPort?.postMessage({ id: message.id })
  } catch (e) {
    specIds.clear()
    const error = /** @type {{ name?: string, message?: string, code?: unknown }} */ (e)
    parentPort?.postMessage({
      id: message.id,
      error: { name: error.name, message: error.message ?? String(e), code: error.code },
    })
  }
})
