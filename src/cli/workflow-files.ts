/**
 * Which files a workflow entry names: a module file, a directory's top-level modules, or a glob
 * (`*` within a segment, `**` across segments, `?`, `{a,b}`). Pure file-system reads, no loading;
 * workflow-loader.ts loads and watches what this finds.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, resolve, sep } from 'node:path';

/** A workflow module: `.ts`, `.mts`, `.js`, `.mjs`. */
export const MODULE_FILE = /\.(ts|mts|js|mjs)$/;
/** Not a workflow module: dotfiles, `_*`, declarations, tests. */
const SKIPPED_FILE = /(^[._])|\.d\.m?ts$|\.(test|spec)\.[cm]?[jt]s$/;
/** An entry with one of these is a glob. */
export const GLOB_CHARS = /[*?[{]/;

/** Files named by entries (files, directories, globs), sorted and without duplicates. */
export function expandEntries(
  entries: readonly string[],
  baseDir: string,
): { files: string[]; missing: string[] } {
  const files = new Set<string>();
  const missing: string[] = [];
  for (const entry of entries) {
    const path = isAbsolute(entry) ? entry : resolve(baseDir, entry);
    if (GLOB_CHARS.test(entry)) {
      const matcher = globToRegExp(path);
      for (const file of walk(globBase(path))) if (matcher.test(file)) files.add(file);
      continue;
    }
    if (!existsSync(path)) {
      missing.push(entry);
      continue;
    }
    if (statSync(path).isDirectory()) {
      for (const name of readdirSync(path).sort()) {
        const file = join(path, name);
        if (MODULE_FILE.test(name) && !SKIPPED_FILE.test(name) && statSync(file).isFile())
          files.add(file);
      }
    } else files.add(path);
  }
  return { files: [...files].sort(), missing };
}

/** The directory a glob starts in: its segments before the first with a glob character. */
export function globBase(pattern: string): string {
  const parts = pattern.split(sep);
  const i = parts.findIndex((p) => GLOB_CHARS.test(p));
  return parts.slice(0, i).join(sep) || sep;
}

/** `*` within a path segment, `**` across segments, `?` one character, `{a,b}` alternatives. */
function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      const slash = pattern[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '{') {
      const end = pattern.indexOf('}', i);
      if (end < 0) re += '\\{';
      else {
        re += `(?:${pattern
          .slice(i + 1, end)
          .split(',')
          .map(escapeRegExp)
          .join('|')})`;
        i = end;
      }
    } else re += escapeRegExp(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.+^${}()|[\]\\*?]/g, '\\$&');
}

function* walk(dir: string): Generator<string> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names.sort()) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isDirectory()) yield* walk(path);
    else if (stat?.isFile() && MODULE_FILE.test(name) && !SKIPPED_FILE.test(basename(name)))
      yield path;
  }
}
