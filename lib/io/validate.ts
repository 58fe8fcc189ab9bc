// Validation at the boundary: a valibot schema checks a command's resolved options; the first
// problem becomes one error line that names the flag (or config field) and what it expects.
import * as v from "valibot";
import { InputError } from "../base/errors.ts";

export function validate<S extends v.GenericSchema>(schema: S, input: unknown, what = "option"): v.InferOutput<S> {
  const r = v.safeParse(schema, input);
  if (r.success) return r.output;
  const issue = r.issues[0]!;
  const path = issue.path?.map((p: any) => p.key).join(".") ?? "";
  throw new InputError(`${what} ${path ? `--${path}` : ""}: ${issue.message}`.replace(/\s+/g, " "));
}

// decimal only: Number() would also read "0x10", "0b11" and "" as numbers
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$|^[+-]?Infinity$/i;

/** A CLI number: "12" → 12, "1e-3" → 0.001; anything else stays as it is for the schema to reject. */
export function num(x: unknown): unknown {
  if (typeof x !== "string") return x;
  const t = x.trim();
  return DECIMAL.test(t) ? Number(t.replace(/infinity/i, "Infinity")) : x;
}
