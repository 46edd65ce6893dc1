/** path-to-regexp 0.1 (the version express 4 matches its routes with) ships no types. */
declare module 'path-to-regexp' {
  interface Key {
    name: string | number;
    optional: boolean;
    offset: number;
  }
  interface Options {
    /** Case-sensitive matching. @default false */
    sensitive?: boolean;
    /** A trailing slash must match exactly. @default false */
    strict?: boolean;
    /** Match the whole path, not a prefix of it. @default true */
    end?: boolean;
  }
  function pathToRegexp(path: string | RegExp | (string | RegExp)[], keys?: Key[], options?: Options): RegExp;
  export = pathToRegexp;
}
