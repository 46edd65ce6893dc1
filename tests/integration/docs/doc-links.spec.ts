/**
 * The Markdown files' local links and anchors, as GitHub renders them (`doc-links.ts`): round K
 * moved the README's performance history into docs/performance.md, and a link or a heading moved
 * or renamed since must not leave a reader at a missing file or section.
 */
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
    expect(brokenLinks(dir, markdownFiles(dir))).toEqual([
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

  it("gives headings GitHub's slugs: punctuation dropped, spaces to hyphens, repeats numbered", () => {
    const anchors = anchorsOf('## The worker ↔ host hop (issue 14, round J)\n## A, b\n## A, b\n');
    expect([...anchors]).toEqual(['the-worker--host-hop-issue-14-round-j', 'a-b', 'a-b-1']);
  });
});
