import { slugify } from './slug.mjs';
import { countWords, topWord } from './words.mjs';

/** Summarises a document: its slug, word count and most frequent word. */
export function summarise(title, body) {
  return { slug: slugify(title), words: countWords(body), top: topWord(body) };
}
