/**
 * Artifact and packet files, in YAML or JSON (YAML is a superset of JSON, so one parser reads
 * both). A syntax error names its line and column; a file that parses is then checked by the
 * schemas, whose errors name the field path.
 */
import { LineCounter, isCollection, parseDocument, visit } from 'yaml'
import { ValidationError } from './errors.ts'
import type { Issue } from './errors.ts'
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
  const deep = textNesting(text, MAX_TEXT_DEPTH, MAX_INDENT)
  if (deep !== undefined) {
    const message =
      deep === 'depth'
        ? `nests deeper than ${MAX_TEXT_DEPTH} levels of brackets`
        : `a line is indented more than ${MAX_INDENT} columns`
    throw new ValidationError([{ path: '', message: `${source}: ${message}` }])
  }
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
  const problem = treeProblem(data)
  if (problem !== undefined) throw new ValidationError([problem])
  return data
}

/**
 * Whether a text nests too deeply to hand to a parser, found in one pass over its characters
 * and allocating nothing: `depth` when its flow collections (`[`, `{`) open more than `maxDepth`
 * deep outside quotes, `indent` when a line is indented further than `maxIndent` columns. The
 * YAML parser recurses per level; thousands of levels would exhaust the stack inside it, where
 * V8 may fail fatally (a regular expression compiled on a nearly full stack) rather than throw.
 * For JSON, whose strings hold no raw newline or unescaped quote, the count is exact.
 */
export function textNesting(
  text: string,
  maxDepth: number,
  maxIndent = Infinity,
): 'depth' | 'indent' | undefined {
  let depth = 0
  let quote = 0
  let column = 0
  let indenting = true
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 10) {
      // A quote is closed at the end of its line for this count: a quote character inside a
      // plain scalar (`it's`) must not hide the brackets of the lines after it.
      column = 0
      indenting = true
      quote = 0
      continue
    }
    if (indenting) {
      if (c === 32) {
        if (++column > maxIndent) return 'indent'
        continue
      }
      indenting = false
    }
    if (quote !== 0) {
      if (c === 92 && quote === 34) i++
      else if (c === quote) quote = 0
    } else if (c === 34 || c === 39) quote = c
    else if (c === 91 || c === 123) {
      if (++depth > maxDepth) return 'depth'
    } else if ((c === 93 || c === 125) && depth > 0) depth--
  }
  return undefined
}

/** The deepest flow nesting a text may have before it is parsed (above {@link MAX_DEPTH}). */
const MAX_TEXT_DEPTH = 256
/** The deepest indentation a line may have before the text is parsed. */
const MAX_INDENT = 1024

/** How deep a document may nest maps and lists: far deeper than any artifact or packet needs. */
export const MAX_DEPTH = 64

/**
 * What keeps parsed data from being a tree Lockstep can check and store: a value that contains
 * itself (through a YAML alias), or nesting deeper than {@link MAX_DEPTH}, which recursive
 * checks and serialisers could not follow without running out of stack. Iterative, so any depth
 * is walked safely.
 */
export function treeProblem(root: unknown): Issue | undefined {
  // Entries to visit, and markers (undefined value) that close the value opened before them.
  const stack: { value: unknown; path: string; depth: number }[] = [
    { value: root, path: '', depth: 0 },
  ]
  const open = new Set<object>()
  const closing: object[] = []
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!
    if (depth < 0) {
      open.delete(closing.pop()!)
      continue
    }
    if (typeof value !== 'object' || value === null) continue
    if (open.has(value)) {
      return { path, message: 'refers to itself through an alias; a document must be a tree' }
    }
    if (depth >= MAX_DEPTH) {
      return { path, message: `nests deeper than ${MAX_DEPTH} levels of maps and lists` }
    }
    open.add(value)
    closing.push(value)
    stack.push({ value: undefined, path, depth: -1 })
    const isArray = Array.isArray(value)
    for (const [key, child] of Object.entries(value)) {
      if (typeof child !== 'object' || child === null) continue
      const at = isArray ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`
      stack.push({ value: child, path: at, depth: depth + 1 })
    }
  }
  return undefined
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
