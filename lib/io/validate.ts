// Validation at the boundary: a valibot schema checks a command's resolved options; the first
// problem becomes one error line that names the flag (or config field) and what it expects.
import * as v from "valibot";
import { InputError } from "./errors.ts";

export function validate<S extends v.GenericSchema>(schema: S, input: unknown, what = "option"): v.InferOutput<S> {
  const r = v.safeParse(schema, input);
  if (r.success) return r.output;
  const issue = r.issues[0]!;
  const path = issue.path?.map((p: any) => p.key).join(".") ?? "";
  throw new InputError(`${what} ${path ? `--${path}` : ""}: ${issue.message}`.replace(/\s+/g, " "));
}

/** A CLI number: "12" → 12, anything else stays as it is for the schema to reject. */
export function num(x: unknown): unknown {
  if (typeof x !== "string" || x.trim() === "") return x;
  const n = Number(x);
  return Number.isNaN(n) ? x : n;
}
