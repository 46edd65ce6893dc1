/**
 * Duplicate keys in JSON text. `JSON.parse` keeps the last of two equal keys without a word, so
 * a log line that says `"pid":1` and then `"pid":2` (pino writes a child logger's bindings and a
 * call's fields side by side, whatever their names) reads as one `pid`; a log collector may take
 * the first. Tests look at the raw text with this.
 */

/**
 * The keys that occur more than once in the same object of `json` (at any depth), each as its
 * path from the top (`pid`, `err.message`), once per repetition; [] when there is none. `json`
 * must be valid JSON (it is not checked here: `JSON.parse` it too).
 */
export function duplicateJsonKeys(json: string): string[] {
  /** Per open object or array, its path; an object's keys seen so far (an array has none). */
  const open: { path: string; keys: Set<string> | undefined }[] = [];
  const duplicates: string[] = [];
  /** The path of the last key read: that of the value after it. */
  let keyPath = '';
  for (let index = 0; index < json.length; index++) {
    const char = json[index];
    if (char === '"') {
      let end = index + 1;
      while (json[end] !== '"') end += json[end] === '\\' ? 2 : 1;
      const text = json.slice(index, end + 1);
      index = end;
      let next = end + 1;
      while (json[next] === ' ' || json[next] === '\n' || json[next] === '\t' || json[next] === '\r') next++;
      const container = open.at(-1);
      if (json[next] !== ':' || !container?.keys) continue;
      const key = JSON.parse(text) as string;
      keyPath = container.path ? `${container.path}.${key}` : key;
      if (container.keys.has(key)) duplicates.push(keyPath);
      container.keys.add(key);
    } else if (char === '{' || char === '[') {
      const container = open.at(-1);
      // A value in an array is named after the array; one in an object after its key.
      const path = container === undefined ? '' : container.keys ? keyPath : `${container.path}[]`;
      open.push({ path, keys: char === '{' ? new Set() : undefined });
    } else if (char === '}' || char === ']') {
      open.pop();
    }
  }
  return duplicates;
}
