// Lint rules that keep the layers honest: imports point one way,
// core <- store <- engine <- server <- cli, and nothing outside src/store writes SQL
// against a driver.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (name, forbidden, extra = []) => ({
  files: [`src/${name}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...forbidden.map((other) => ({
            group: [`**/${other}/*`, `../${other}`, `../../${other}/*`],
            message: `src/${name} must not import src/${other}: imports point core <- store <- engine <- server <- cli.`,
          })),
          ...extra,
        ],
      },
    ],
  },
});

const drivers = [
  {
    group: ['pg', '@electric-sql/pglite', '@electric-sql/pglite/*'],
    message: 'Only src/store talks to database drivers.',
  },
];
const nodeIo = [
  {
    group: [
      'node:fs',
      'node:fs/*',
      'node:net',
      'node:http',
      'node:child_process',
      'fs',
      'net',
      'http',
    ],
    message: 'src/core is pure: no IO.',
  },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.weft/**', 'dashboard/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly', URL: 'readonly' } },
  },
  layer('core', ['store', 'engine', 'server', 'cli'], [...drivers, ...nodeIo]),
  layer('store', ['engine', 'server', 'cli']),
  layer('engine', ['server', 'cli'], drivers),
  // the optional analytics mirror (ClickHouse, logical replication): beside the engine, below the server
  layer('analytics', ['server', 'cli']),
  layer('server', ['cli'], drivers),
  layer('cli', [], drivers),
);
