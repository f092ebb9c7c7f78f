/**
 * Artifact and packet files, in YAML or JSON (YAML is a superset of JSON, so one parser reads
 * both). A syntax error names its line and column; a file that parses is then checked by the
 * schemas, whose errors name the field path.
 */
import { LineCounter, parseDocument } from 'yaml'
import { ValidationError } from './errors.ts'
import type { Artifact } from './model.ts'
import { compilePacket, defaultPacketLimits } from './packet.ts'
import type { Packet, PacketLimits } from './packet.ts'
import { compileArtifact } from './schema.ts'

/** What a submitted file holds. */
export type Submission =
  { kind: 'artifact'; artifact: Artifact } | { kind: 'packet'; packet: Packet }

/** Parses YAML or JSON text into plain data; a syntax error becomes a {@link ValidationError}. */
export function readDocument(text: string, source = 'input'): unknown {
  const lines = new LineCounter()
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lines })
  if (doc.errors.length > 0) {
    throw new ValidationError(
      doc.errors.map((e) => {
        const at = lines.linePos(e.pos[0])
        const where = `${source}:${at.line}:${at.col}`
        return { path: '', message: `${where}: ${e.message.split('\n')[0]!}` }
      }),
    )
  }
  return doc.toJS({ maxAliasCount: 100 }) as unknown
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
