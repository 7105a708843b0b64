import neostandard, { plugins } from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'coverage/**'] }),
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname }
    },
    plugins: { '@typescript-eslint': plugins['typescript-eslint'].plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error'
    }
  },
  {
    files: ['src/session/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: ['fastify', 'ws', 'openai', 'ioredis', '@fastify/websocket'], patterns: ['openai/*', '../transport/*'] }]
    }
  },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } }
]
