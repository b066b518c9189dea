// Lint: the recommended JavaScript and TypeScript rules, plus the house rules from STYLE.md
// (no `any` in code we export, no floating promises on the data path is left to review).
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'bench/tmp/**', '**/*.d.ts']},
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none'}],
      'no-constant-condition': ['error', {checkLoops: false}],
      'no-control-regex': 'off',
      'no-empty': ['error', {allowEmptyCatch: false}],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {'@typescript-eslint/no-unused-expressions': 'off'},
  },
)
