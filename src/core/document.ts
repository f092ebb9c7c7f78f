/**
 * Artifact and packet files, in YAML or JSON (YAML is a superset of JSON, so one parser reads
 * both). A syntax error names its line and column; a file that parses is then checked by the
 * schemas, whose errors name the field path.
 */
import { LineCounter, isCollection, parseDocument, visit } from 'yaml'
import { ValidationError } from './errors.ts'
import type { Artifact } from './model.ts'
import { compilePacket, defaultPacketLimits } from './packet.ts'
import type { Packet, PacketLimits } from './packet.ts'
import { compileArtifact } from './schema.ts'

/** What a submitted file holds. */
export type Submission =
  { kind: 'artifact'; artifact: Artifact } | { kind: 'packet'; packet: Packet }

/**
 * Parses YAML or JSON text into plain data: maps, arrays, strings, numbers, booleans and null.
 * A syntax error, an alias to no anchor or an alias inside its own anchor becomes a
 * {@link ValidationError} that names where; tags such as `!!binary` or `!!set` are not turned
 * into objects the schemas do not expect.
 */
export function readDocument(text: string, source = 'input'): unknown {
  const lines = new LineCounter()
  const doc = parseDocument(text, {
    prettyErrors: false,
    uniqueKeys: true,
    lineCounter: lines,
    resolveKnownTags: false,
  })
  const at = (pos: number): string => {
    const where = lines.linePos(pos)
    return `${source}:${where.line}:${where.col}`
  }
  if (doc.errors.length > 0) {
    throw new ValidationError(
      doc.errors.map((e) => ({
        path: '',
        message: `${at(e.pos[0])}: ${e.message.split('\n')[0]!}`,
      })),
    )
  }
  let complexKey: number | undefined
  visit(doc, {
    Pair(_, pair) {
      if (!isCollection(pair.key)) return undefined
      complexKey = pair.key.range?.[0] ?? 0
      return visit.BREAK
    },
  })
  if (complexKey !== undefined) {
    throw new ValidationError([
      { path: '', message: `${at(complexKey)}: a map key must be a string, not a map or a list` },
    ])
  }
  let data: unknown
  try {
    data = doc.toJS({ maxAliasCount: 100, mapAsMap: false })
  } catch (e) {
    // The yaml library throws a ReferenceError for an alias whose anchor is not set before it.
    throw new ValidationError([{ path: '', message: `${at(0)}: ${(e as Error).message}` }])
  }
  const cycle = cyclePath(data)
  if (cycle !== undefined) {
    throw new ValidationError([
      { path: cycle, message: 'refers to itself through an alias; a document must be a tree' },
    ])
  }
  return data
}

/** The path of the first value that contains itself, or undefined for a tree. */
function cyclePath(root: unknown): string | undefined {
  const open = new Set<object>()
  const visit = (value: unknown, path: string): string | undefined => {
    if (typeof value !== 'object' || value === null) return undefined
    if (open.has(value)) return path
    open.add(value)
    for (const [key, child] of Object.entries(value)) {
      const found = visit(
        child,
        Array.isArray(value) ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`,
      )
      if (found !== undefined) return found
    }
    open.delete(value)
    return undefined
  }
  return visit(root, '')
}

/**
 * Reads a file that holds an artifact (`project` and `steps`) or a packet (`jobs`), and checks it.
 */
export function readSubmission(
  text: string,
  source = 'input',
  limits: PacketLimits = defaultPacketLimits,
): Submission {
  return classify(readDocument(text, source), limits)
}

/** Checks already parsed data that holds an artifact or a packet. */
export function classify(data: unknown, limits: PacketLimits = defaultPacketLimits): Submission {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ValidationError([
      { path: '', message: 'expected an artifact (project, steps) or a packet (name, jobs)' },
    ])
  }
  if ('steps' in data) return { kind: 'artifact', artifact: compileArtifact(data) }
  if ('jobs' in data) return { kind: 'packet', packet: compilePacket(data, limits) }
  throw new ValidationError([
    {
      path: '',
      message: 'expected an artifact (with steps) or a packet (with jobs); found neither field',
    },
  ])
}
