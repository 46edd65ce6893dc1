/**
 * The repository's Markdown files' local links, checked as GitHub renders them: every relative
 * link must name a file or directory that exists, and every `#anchor` (alone, or after a `.md`
 * file) a heading of that file (GitHub's slugs, by `github-slugger`, duplicates numbered `-1`,
 * `-2`, …) or an `<a id>`/`<a name>` in it. Links to other schemes (`https:`, `mailto:`) are not
 * followed. Fenced code blocks and inline code are skipped, as GitHub renders no link there.
 * HTML links (`<a href="…">`) are checked as Markdown ones; a target with a malformed
 * `%`-escape is reported as broken.
 */
import GithubSlugger from 'github-slugger';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** One broken link: the file and 1-based line it is on, its target, and why it is broken. */
export interface BrokenLink {
  file: string;
  line: number;
  target: string;
  reason: string;
}

/**
 * Every `*.md` file git tracks under `root` (a work tree; paths relative to it, `/`-separated,
 * sorted), by `git ls-files`: under dot-directories too (`.github/`), never an untracked one
 * (`.mpd/`, where runs of the tests and the demo write files while this test reads; anything
 * ignored or not yet added). A tracked file deleted from the work tree is left out.
 * @throws when `root` is not in a git work tree, or git cannot be run
 */
export function markdownFiles(root: string): string[] {
  const listed = execFileSync('git', ['ls-files', '-z', '--', '*.md'], { cwd: root, encoding: 'utf8', stdio: 'pipe' });
  return listed
    .split('\0')
    .filter((path) => path !== '' && existsSync(join(root, path)))
    .sort();
}

/** A Markdown file's lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(text: string): Array<{ line: number; text: string }> {
  const lines: Array<{ line: number; text: string }> = [];
  let fence: string | undefined;
  text.split('\n').forEach((raw, index) => {
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(raw)?.[1];
    if (fence !== undefined) {
      if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      return;
    }
    if (marker !== undefined) {
      fence = marker;
      return;
    }
    lines.push({ line: index + 1, text: raw });
  });
  return lines;
}

/** The anchors a Markdown file has on GitHub: its headings' slugs and its explicit `<a id|name>`s. */
export function anchorsOf(text: string): Set<string> {
  const slugger = new GithubSlugger();
  const anchors = new Set<string>();
  for (const { text: line } of proseLines(text)) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+\s*)?$/.exec(line);
    if (heading?.[1] !== undefined) {
      // The heading as rendered text: a link's text, not its target; no inline-code backticks.
      const rendered = heading[1].replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/`/g, '');
      anchors.add(slugger.slug(rendered));
    }
    for (const match of line.matchAll(/<a\s+(?:[^>]*\s)?(?:id|name)="([^"]+)"/g)) anchors.add(match[1] ?? '');
  }
  return anchors;
}

/**
 * The link targets on one line of prose, inline code spans left out: `[text](target)`,
 * `[label]: target` and HTML's `<a href="target">`.
 */
function targetsOf(line: string): string[] {
  const prose = line.replace(/(`+)[^`]*?\1/g, '');
  const targets: string[] = [];
  for (const match of prose.matchAll(/\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+"[^"]*")?\s*\)/g)) {
    targets.push((match[1] ?? '').replace(/^<|>$/g, ''));
  }
  for (const match of prose.matchAll(/<a\s+(?:[^>]*\s)?href\s*=\s*(?:"([^"]*)"|'([^']*)')/gi)) {
    targets.push(match[1] ?? match[2] ?? '');
  }
  const definition = /^ {0,3}\[[^\]]+\]:\s+(\S+)/.exec(prose);
  if (definition?.[1] !== undefined) targets.push(definition[1]);
  return targets;
}

/**
 * The broken local links of the Markdown files `files` (relative to `root`).
 * @returns one {@link BrokenLink} per broken link, in file and line order; empty when all hold.
 */
export function brokenLinks(root: string, files: string[]): BrokenLink[] {
  const anchorCache = new Map<string, Set<string>>();
  const anchorsOfFile = (path: string): Set<string> => {
    let anchors = anchorCache.get(path);
    if (anchors === undefined) {
      anchors = anchorsOf(readFileSync(path, 'utf8'));
      anchorCache.set(path, anchors);
    }
    return anchors;
  };
  const broken: BrokenLink[] = [];
  for (const file of files) {
    const absolute = resolve(root, file);
    for (const { line, text } of proseLines(readFileSync(absolute, 'utf8'))) {
      for (const target of targetsOf(text)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, …: not local
        const hashAt = target.indexOf('#');
        let pathPart: string;
        let anchor: string | undefined;
        try {
          pathPart = decodeURIComponent(hashAt === -1 ? target : target.slice(0, hashAt));
          anchor = hashAt === -1 ? undefined : decodeURIComponent(target.slice(hashAt + 1));
        } catch {
          // URIError: GitHub links such a target as written, to nothing that exists.
          broken.push({ file, line, target, reason: 'a malformed %-escape' });
          continue;
        }
        const linked = pathPart === '' ? absolute : resolve(dirname(absolute), pathPart);
        if (!existsSync(linked)) {
          broken.push({ file, line, target, reason: `no such file: ${relative(root, linked)}` });
          continue;
        }
        if (anchor === undefined || anchor === '') continue;
        if (statSync(linked).isDirectory() || !linked.endsWith('.md')) {
          broken.push({ file, line, target, reason: 'an anchor into a file that is not Markdown' });
        } else if (!anchorsOfFile(linked).has(anchor)) {
          broken.push({ file, line, target, reason: `no heading or anchor #${anchor} in ${relative(root, linked)}` });
        }
      }
    }
  }
  return broken;
}
