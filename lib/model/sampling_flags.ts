// The sampling settings generate and chat take from their flags, checked in one place: each
// setting's range, and the message that names the flag when a value is outside it.
import * as v from "valibot";
import { num, validate } from "../io/validate.ts";

const n = () => v.number("expected a number");
const Flags = v.object({
  "max-new-tokens": v.pipe(n(), v.integer(), v.minValue(1)),
  temperature: v.pipe(n(), v.minValue(0, "must be >= 0 (0 = greedy)")),
  "top-k": v.pipe(n(), v.integer(), v.minValue(0)),
  "top-p": v.pipe(n(), v.gtValue(0, "must be in (0, 1]"), v.maxValue(1, "must be in (0, 1]")),
  seed: v.pipe(n(), v.integer(), v.minValue(0)),
});

export interface Sampling {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

/** The sampling settings of a command's parsed flags (strings, as citty gives them). */
export function samplingFlags(args: Record<string, unknown>): Sampling {
  const o = validate(Flags, Object.fromEntries(Object.keys(Flags.entries).map((k) => [k, num(args[k])])));
  return {
    maxNewTokens: o["max-new-tokens"],
    temperature: o.temperature,
    topK: o["top-k"],
    topP: o["top-p"],
    seed: o.seed,
  };
}
