// @ts-check
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import { createNodeResolver, importX } from 'eslint-plugin-import-x'

// The layers of DESIGN.md, and what each may import. An import goes down the picture, never up.
const mayImport = {
  core: [],
  store: ['core'],
  service: ['core', 'store'],
  targets: ['core', 'service', 'runner'],
  runner: ['core'],
  server: ['core', 'store', 'service', 'targets', 'runner'],
  client: ['core', 'runner'],
  worker: ['core', 'client', 'runner'],
  cli: ['core', 'store', 'service', 'targets', 'server', 'client', 'worker', 'runner'],
  web: ['core', 'client'],
}
const layers = Object.keys(mayImport)

/** @param {string} layer */
const layerRule = (layer) => ({
  files: [`src/${layer}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...(layer === 'core'
            ? [{ group: ['node:*'], message: 'src/core is pure: no node: modules.' }]
            : []),
          ...layers
            .filter((other) => other !== layer && !mayImport[layer].includes(other))
            .map((other) => ({
              group: [`**/${other}/**`, `../${other}`, `../../${other}`],
              message: `src/${layer} may not import src/${other}: imports go down the layers in DESIGN.md.`,
            })),
        ],
      },
    ],
  },
})

export default tseslint.config(
  { ignores: ['node_modules/**', 'coverage/**', '.lockstep/**', 'dist/**', 'src/web/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'] })],
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'import-x/no-cycle': 'error',
    },
  },
  ...layers.map(layerRule),
  {
    // The core decides; it never touches the world: no clock but the injected one.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'Time comes from the injected Clock.' },
        { name: 'setInterval', message: 'Time comes from the injected Clock.' },
        { name: 'process', message: 'src/core is pure.' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Time comes from the injected Clock.' },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // The dashboard runs in the browser, as ES modules without a build: these are its globals.
    // Listed by name rather than as every browser global, so a Node-only name fails here.
    files: ['src/web/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'AbortController',
          'addEventListener',
          'clearInterval',
          'clearTimeout',
          'document',
          'Event',
          'fetch',
          'Headers',
          'history',
          'HTMLElement',
          'location',
          'MessageEvent',
          'performance',
          'postMessage',
          'removeEventListener',
          'sessionStorage',
          'setInterval',
          'setTimeout',
          'SVGSVGElement',
          'TextDecoder',
          'TextDecoderStream',
          'URLSearchParams',
          'Worker',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
)
