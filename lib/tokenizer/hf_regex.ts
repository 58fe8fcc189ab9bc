// Oniguruma patterns (what Hugging Face's Rust `tokenizers` compiles a tokenizer.json's Split and
// Replace regexes with) rewritten for JavaScript's engine in "u" mode. The differences that matter for
// real tokenizer files: Oniguruma's \s is Unicode White_Space (it has U+0085, not U+FEFF; JavaScript's
// is the reverse), \d and \w are Unicode classes (JavaScript's are ASCII), scripts are named bare
// (\p{Han}, JavaScript wants \p{Script=Han}), and (?i:...) groups are not JavaScript syntax.
// Anything else Oniguruma-only (atomic groups, possessive quantifiers, \G, POSIX brackets) makes
// `new RegExp` throw, and the caller refuses the field.
// Classes per the Oniguruma manual (doc/RE, "Character types", Unicode case).

/** Unicode White_Space, as Oniguruma's \s matches it (also Rust's char::is_whitespace). */
export const WS = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

// members to put inside a class, and the class to use outside one
const CLASS: Record<string, string> = {
  s: WS,
  d: "\\p{Nd}",
  w: "\\p{L}\\p{M}\\p{Nd}\\p{Pc}",
};

function _isProperty(name: string): boolean {
  try {
    new RegExp(`\\p{${name}}`, "u");
    return true;
  } catch {
    return false;
  }
}

/** The JavaScript source of Oniguruma `pattern`; throws Error naming what it cannot rewrite. */
export function onigToJs(pattern: string): string {
  let out = "";
  let inClass = false;
  // depth of (?i: groups open, with the paren depth each opened at
  const caseless: number[] = [];
  let parens = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "\\") {
      const n = pattern[i + 1];
      if (n === undefined) throw new Error("pattern ends in a backslash");
      if (n === "p" || n === "P") {
        const close = pattern.indexOf("}", i);
        const name = pattern.slice(i + 3, close);
        const js = _isProperty(name) ? name : `Script=${name}`;
        out += `\\${n}{${js}}`;
        i = close;
        continue;
      }
      const lower = n.toLowerCase();
      if (lower in CLASS && (n === lower || !inClass)) {
        const members = CLASS[lower]!;
        out += inClass ? members : n === lower ? `[${members}]` : `[^${members}]`;
        i++;
        continue;
      }
      if (lower in CLASS) throw new Error(`\\${n} inside a character class`);
      out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === "[") throw new Error("a nested character class");
      if (c === "]") inClass = false;
      out += c;
      continue;
    }
    if (c === "[") {
      if (caseless.length) throw new Error("a character class inside (?i:...)");
      inClass = true;
      out += c;
      // a leading ] is a literal member
      if (pattern[i + 1] === "^") out += pattern[++i];
      if (pattern[i + 1] === "]") out += `\\${pattern[++i]}`;
      continue;
    }
    if (c === "(") {
      parens++;
      if (pattern.startsWith("(?i:", i)) {
        caseless.push(parens);
        out += "(?:";
        i += 3;
        continue;
      }
      out += c;
      continue;
    }
    if (c === ")") {
      if (caseless.at(-1) === parens) caseless.pop();
      parens--;
      out += c;
      continue;
    }
    if (caseless.length && /[a-zA-Z]/.test(c)) {
      out += `[${c.toLowerCase()}${c.toUpperCase()}]`;
      continue;
    }
    out += c;
  }
  return out;
}

/** `pattern` as a global JavaScript RegExp (throws on what cannot be rewritten or compiled). */
export function onigRegExp(pattern: string): RegExp {
  return new RegExp(onigToJs(pattern), "gu");
}
