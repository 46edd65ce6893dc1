import assert from 'node:assert/strict';
import { test } from 'node:test';
import { slugify } from '../src/slug.mjs';
import { countWords, topWord } from '../src/words.mjs';

test('slugify lowercases and joins with dashes', () => {
  assert.equal(slugify('Hello, World!'), 'hello-world');
  assert.equal(slugify('  Crème brûlée  '), 'creme-brulee');
});

test('countWords counts words', () => {
  assert.equal(countWords('one two  three\nfour'), 4);
  assert.equal(countWords('   '), 0);
});

test('topWord finds the most frequent word', () => {
  assert.equal(topWord('the cat and the hat'), 'the');
});
