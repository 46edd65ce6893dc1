/** Counts the words of a text. */
export function countWords(text) {
  const words = text.trim().split(/\s+/).filter(Boolean);
  return words.length;
}

/** The most frequent word of a text (ties: the first seen). */
export function topWord(text) {
  const counts = new Map();
  for (const word of text.toLowerCase().match(/[a-z']+/g) ?? []) counts.set(word, (counts.get(word) ?? 0) + 1);
  let best;
  for (const [word, count] of counts) if (!best || count > best[1]) best = [word, count];
  return best?.[0];
}
