import { describe, expect, it } from 'vitest'
import { readDocument, readSubmission } from '../../src/core/document.ts'

describe('artifact and packet files', () => {
  it('reads an artifact from YAML', () => {
    const got = readSubmission(
      [
        'project: sales',
        'steps:',
        '  - kind: parallel',
        '    op: { builtin: count }',
        '  - kind: finalize',
        '    op: { builtin: sum }',
      ].join('\n'),
    )
    expect(got.kind).toBe('artifact')
    if (got.kind === 'artifact') expect(got.artifact.steps).toHaveLength(2)
  })

  it('reads a packet from JSON', () => {
    const got = readSubmission(
      JSON.stringify({ name: 'p', jobs: [{ name: 'a', op: { exec: ['true'] } }] }),
    )
    expect(got.kind).toBe('packet')
  })

  it.each([
    { name: 'malformed YAML', text: 'project: p\nsteps: [\n', error: 'order.yaml:3:1' },
    {
      name: 'a duplicate key',
      text: 'project: p\nproject: q\nsteps: []',
      error: 'order.yaml:2:1: Map keys must be unique',
    },
    {
      name: 'a list at the top',
      text: '- 1\n- 2',
      error: 'expected an artifact (project, steps) or a packet (name, jobs)',
    },
    { name: 'neither steps nor jobs', text: 'name: x', error: 'found neither field' },
    {
      name: 'a schema error',
      text: 'project: p\nsteps:\n  - kind: parallel',
      error: 'steps[0].op: is required',
    },
    {
      name: 'an alias to no anchor',
      text: 'project: *p\nsteps: []',
      error: 'order.yaml:1:1: Unresolved alias',
    },
    {
      name: 'an alias inside its own anchor',
      text: 'project: p\nsteps: &s [*s]',
      error: 'steps[0]: refers to itself through an alias',
    },
    {
      name: 'a list as a map key',
      text: 'project: p\n? [1]\n: 2\nsteps: []',
      error: 'order.yaml:2:3: a map key must be a string',
    },
  ])('explains $name', ({ text, error }) => {
    expect(() => readSubmission(text, 'order.yaml')).toThrow(error)
  })

  it('keeps tags such as !!binary as the text they tag, not as objects the schemas do not know', () => {
    expect(readDocument('a: !!binary aGk=\nb: !!set { x }')).toEqual({ a: 'aGk=', b: { x: null } })
  })

  it.each([
    { name: 'brackets thousands deep', text: 'a: ' + '['.repeat(5_000) + ']'.repeat(5_000) },
    {
      name: 'brackets behind a quote in a plain scalar',
      text: "note: it's\nb: " + '{"a":'.repeat(3_000) + '1' + '}'.repeat(3_000),
    },
    { name: 'a line indented thousands of columns', text: 'a:\n' + ' '.repeat(5_000) + 'b: 1' },
  ])('refuses $name before the parser recurses into it', ({ text }) => {
    expect(() => readDocument(text, 'body')).toThrow(/^body: (nests deeper|a line is indented)/)
  })

  it('counts no bracket inside a quoted string', () => {
    expect(readDocument(`a: "${'['.repeat(1_000)}"`)).toEqual({ a: '['.repeat(1_000) })
  })

  it('shares an anchor between two places, as YAML users write it', () => {
    expect(readDocument('env: &e { A: "1" }\nalso: *e')).toEqual({
      env: { A: '1' },
      also: { A: '1' },
    })
  })
})
