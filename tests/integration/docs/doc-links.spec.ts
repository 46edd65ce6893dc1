/**
 * The Markdown files' local links and anchors, as GitHub renders them (`doc-links.ts`): round K
 * moved the README's performance history into docs/performance.md, and a link or a heading moved
 * or renamed since must not leave a reader at a missing file or section.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../deploy/deploy-files.js';
import { anchorsOf, brokenLinks, markdownFiles } from './doc-links.js';

describe("the repository's Markdown links", () => {
  it('every relative link names a file that exists and every anchor a heading of it', () => {
    const files = markdownFiles(REPO_ROOT);
    expect(files).toContain('README.md');
    expect(files).toContain('docs/performance.md');
    expect(brokenLinks(REPO_ROOT, files)).toEqual([]);
  });
});

describe('brokenLinks', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('reports a missing file, a missing anchor in this file and in another, and nothing else', () => {
    dir = mkdtempSync(join(tmpdir(), 'mpd-doc-links-'));
    mkdirSync(join(dir, 'docs'));
    writeFileSync(
      join(dir, 'README.md'),
      [
        '# mpd',
        '## The `late-line` (round J, 2026-12-01)',
        '## Quick start',
        '## Quick start',
        '<a id="kept"></a>',
        'Good: [a](#the-late-line-round-j-2026-12-01), [b](#quick-start-1), [c](#kept), [d](docs/more.md#whats-here),',
        '[e](docs/), [f](https://example.com/#nowhere), [g](mailto:a@b.c), `[h](#in-code)`.',
        'Bad: [i](#quick-start-2) and [j](docs/gone.md).',
        '```md',
        '[k](#in-a-fence)',
        '```',
        '[l]: docs/more.md#not-there',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'docs', 'more.md'), "# What's here\n\n[back](../README.md#mpd)\n");
    expect(brokenLinks(dir, ['README.md', 'docs/more.md'])).toEqual([
      {
        file: 'README.md',
        line: 8,
        target: '#quick-start-2',
        reason: 'no heading or anchor #quick-start-2 in README.md',
      },
      { file: 'README.md', line: 8, target: 'docs/gone.md', reason: 'no such file: docs/gone.md' },
      {
        file: 'README.md',
        line: 12,
        target: 'docs/more.md#not-there',
        reason: 'no heading or anchor #not-there in docs/more.md',
      },
    ]);
  });

  it('reports a link with a malformed %-escape as broken, and goes on checking', () => {
    dir = mkdtempSync(join(tmpdir(), 'mpd-doc-links-'));
    writeFileSync(join(dir, 'README.md'), '# a\n[x](#100%-done) [y](gone%zz.md) [z](#a)\n[w](#nowhere)\n');
    expect(brokenLinks(dir, ['README.md'])).toEqual([
      { file: 'README.md', line: 2, target: '#100%-done', reason: 'a malformed %-escape' },
      { file: 'README.md', line: 2, target: 'gone%zz.md', reason: 'a malformed %-escape' },
      { file: 'README.md', line: 3, target: '#nowhere', reason: 'no heading or anchor #nowhere in README.md' },
    ]);
  });

  it('checks HTML links (<a href="…">) as Markdown ones, and not in inline code', () => {
    dir = mkdtempSync(join(tmpdir(), 'mpd-doc-links-'));
    mkdirSync(join(dir, 'docs'));
    writeFileSync(join(dir, 'docs', 'here.md'), '# Here\n');
    writeFileSync(
      join(dir, 'README.md'),
      [
        '# a',
        '<a href="docs/here.md#here">ok</a> <a class="x" href="#a">ok</a> <a href="https://example.com/">ok</a>',
        '<a href="docs/gone.md">x</a> `<a href="#in-code">`',
        '<a target="_blank" href="#nowhere">y</a>',
      ].join('\n'),
    );
    expect(brokenLinks(dir, ['README.md'])).toEqual([
      { file: 'README.md', line: 3, target: 'docs/gone.md', reason: 'no such file: docs/gone.md' },
      { file: 'README.md', line: 4, target: '#nowhere', reason: 'no heading or anchor #nowhere in README.md' },
    ]);
  });

  it("lists the Markdown files git tracks: under dot-directories too (.github/), never untracked ones (a run's .mpd/ files)", () => {
    dir = mkdtempSync(join(tmpdir(), 'mpd-doc-links-'));
    const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, stdio: 'pipe' });
    git('init', '--quiet');
    mkdirSync(join(dir, '.github'));
    mkdirSync(join(dir, '.mpd'));
    mkdirSync(join(dir, 'docs'));
    writeFileSync(join(dir, 'README.md'), '# a\n');
    writeFileSync(join(dir, '.github', 'CONTRIBUTING.md'), '[x](../gone.md)\n');
    writeFileSync(join(dir, 'docs', 'tracked.md'), '# t\n');
    writeFileSync(join(dir, 'docs', 'untracked.md'), '[x](nowhere.md)\n');
    writeFileSync(join(dir, '.mpd', 'written-by-a-run.md'), '[x](nowhere.md)\n');
    git('add', 'README.md', '.github/CONTRIBUTING.md', 'docs/tracked.md');
    expect(markdownFiles(dir)).toEqual(['.github/CONTRIBUTING.md', 'README.md', 'docs/tracked.md']);
    expect(brokenLinks(dir, markdownFiles(dir))).toEqual([
      { file: '.github/CONTRIBUTING.md', line: 1, target: '../gone.md', reason: 'no such file: gone.md' },
    ]);
  });

  it("gives headings GitHub's slugs: punctuation dropped, spaces to hyphens, repeats numbered", () => {
    const anchors = anchorsOf('## The worker ↔ host hop (issue 14, round J)\n## A, b\n## A, b\n');
    expect([...anchors]).toEqual(['the-worker--host-hop-issue-14-round-j', 'a-b', 'a-b-1']);
  });
});
