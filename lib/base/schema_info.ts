// What a valibot object schema says about each of its keys, read back from the schema itself: its
// description, default, type and rules. The schema is the one source for a key; command-line flags,
// --help and docs/config.md are generated from what this reads, so none of them can drift.

export interface KeyInfo {
  /** the v.description() in the key's pipe, or "" */
  description: string;
  /** the v.optional() default, undefined when there is none */
  default: unknown;
  required: boolean;
  /** how a command line gives it: text is taken as is, number is parsed, list repeats the flag */
  kind: "text" | "number" | "integer" | "choice" | "list" | "other";
  choices?: string[];
  /** human-readable rules, e.g. "≥ 1", "< 1", "finite" */
  rules: string[];
}

function walk(s: any, info: KeyInfo): void {
  if (s.type === "optional" || s.type === "nullable") {
    if (s.type === "optional") info.required = false;
    if (s.default !== undefined && info.default === undefined)
      info.default = typeof s.default === "function" ? s.default() : s.default;
    walk(s.wrapped, info);
    return;
  }
  if (s.type === "string") info.kind = "text";
  else if (s.type === "number") info.kind = info.kind === "integer" ? "integer" : "number";
  else if (s.type === "picklist") {
    info.kind = "choice";
    info.choices = [...s.options];
  } else if (s.type === "union" || s.type === "array") info.kind = "list";
  for (const a of s.pipe ?? []) {
    if (a === s) continue;
    if (a.kind === "schema") walk(a, info);
    else if (a.type === "description") info.description = a.description;
    else if (a.type === "integer" || a.type === "safe_integer") info.kind = "integer";
    else if (a.type === "min_value") info.rules.push(`≥ ${a.requirement}`);
    else if (a.type === "max_value") info.rules.push(`≤ ${a.requirement}`);
    else if (a.type === "gt_value") info.rules.push(`> ${a.requirement}`);
    else if (a.type === "lt_value") info.rules.push(`< ${a.requirement}`);
    else if (a.type === "finite") info.rules.push("finite");
  }
}

/** What the schema of one key says. */
export function keyInfo(schema: unknown): KeyInfo {
  const info: KeyInfo = { description: "", default: undefined, required: true, kind: "other", rules: [] };
  walk(schema, info);
  return info;
}

/** Every key of an object schema with what its schema says, in the schema's order. */
export function schemaKeys(schema: { entries: Record<string, unknown> }): [string, KeyInfo][] {
  return Object.entries(schema.entries).map(([k, s]) => [k, keyInfo(s)]);
}
