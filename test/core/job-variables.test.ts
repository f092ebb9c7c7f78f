import { describe, expect, it } from 'vitest'
import {
  MAX_ARTEFACTS,
  parseArtefacts,
  resourceVariable,
  resourceVariables,
} from '../../src/core/job-variables.ts'

describe('resource variables', () => {
  it('name each key in capitals, with every other character as _', () => {
    expect(resourceVariable('gpu.model')).toBe('LOCKSTEP_RESOURCE_GPU_MODEL')
    expect(resourceVariable('licence:seat-1')).toBe('LOCKSTEP_RESOURCE_LICENCE_SEAT_1')
    expect(
      resourceVariables([
        { key: 'region', value: 'eu-west', unique: false },
        { key: 'gpu', value: '0', unique: true },
      ]),
    ).toEqual({ LOCKSTEP_RESOURCE_REGION: 'eu-west', LOCKSTEP_RESOURCE_GPU: '0' })
  })
})

describe('parseArtefacts', () => {
  const urls = ['https://files.example/a.log', 's3://bucket/run/7/model.bin']

  it.each([
    { name: 'a termination message', text: JSON.stringify({ artefacts: urls }) },
    { name: 'a JSON array', text: JSON.stringify(urls) },
    { name: 'one URL per line', text: `${urls[0]}\n\n  ${urls[1]}  \n` },
  ])('reads $name', ({ text }) => {
    expect(parseArtefacts(text)).toEqual({ ok: true, artefacts: urls })
  })

  it('reads nothing from empty text', () => {
    expect(parseArtefacts(' \n')).toEqual({ ok: true, artefacts: [] })
  })

  it.each([
    { name: 'broken JSON', text: '{"artefacts": [', problem: /not valid JSON/ },
    { name: 'an object without a list', text: '{"artefacts": "x"}', problem: /must be/ },
    { name: 'a line that is no URL', text: 'results are in /tmp/out', problem: /artefact 1 / },
    { name: 'a number in the list', text: '[1]', problem: /artefact 1 / },
    {
      name: 'too many',
      text: Array.from({ length: MAX_ARTEFACTS + 1 }, (_, i) => `https://x.example/${i}`).join(
        '\n',
      ),
      problem: /limit is 100/,
    },
  ])('refuses $name, saying what is wrong', ({ text, problem }) => {
    const parsed = parseArtefacts(text)
    expect(parsed.ok).toBe(false)
    if (!parsed.ok) expect(parsed.problem).toMatch(problem)
  })
})
