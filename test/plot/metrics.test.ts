// Reading runs back for plot (lib/io/metrics.ts): step and eval lines, a line still being written,
// labels that tell runs apart, and refusals that name the file, the line or the closest metric.
import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readMetrics, readRuns } from "../../lib/io/metrics.ts";
import { tmp } from "../train/helpers.ts";

const dir = tmp("metrics");
const j = (o: unknown) => `${JSON.stringify(o)}\n`;

function run(path: string, text: string): string {
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, "metrics.jsonl"), text);
  return path;
}

const pt = run(
  join(dir, "a", "pt"),
  j({ event: "start", strategy: "seq" }) +
    j({ event: "step", step: 1, loss: 5.5, learning_rate: 1e-4, grad_norm: 2 }) +
    j({ event: "step", step: 2, loss: 5, learning_rate: 2e-4, grad_norm: Number.NaN }) + // NaN is written as null
    j({ event: "eval", step: 2, val_loss: 5.2, val_tokens: 64 }) +
    j({ event: "step", step: 3, loss: 4.5, learning_rate: 3e-4 }) +
    '{"event":"step","step":4,"lo', // a run still writing its next line
);

describe("readMetrics", () => {
  test("a run directory: its step values, validation losses, and the numeric fields seen", () => {
    const m = readMetrics(pt, "loss");
    expect(m.label).toBe("pt");
    expect(m.pts).toEqual([
      [1, 5.5],
      [2, 5],
      [3, 4.5],
    ]);
    expect(m.evals).toEqual([[2, 5.2]]);
    expect([...m.fields].sort()).toEqual(["grad_norm", "learning_rate", "loss", "val_loss", "val_tokens"]);
  });

  test("the metrics file itself; a field missing from some lines; val_loss as the curve", () => {
    expect(readMetrics(join(pt, "metrics.jsonl"), "grad_norm")).toMatchObject({
      label: "pt",
      pts: [[1, 2]],
      evals: [],
    });
    expect(readMetrics(pt, "val_loss")).toMatchObject({ pts: [[2, 5.2]], evals: [] });
  });

  test("a broken line before the last is refused with its file and line", () => {
    const bad = run(
      join(dir, "bad"),
      j({ event: "step", step: 1, loss: 1 }) + "{oops\n" + j({ event: "step", step: 2 }),
    );
    expect(() => readMetrics(bad, "loss")).toThrow(`${join(bad, "metrics.jsonl")}:2: not valid JSON`);
    const arr = run(join(dir, "arr"), "[1, 2]\n");
    expect(() => readMetrics(arr, "loss")).toThrow(`${join(arr, "metrics.jsonl")}:1: expected a JSON object`);
  });

  test("a directory without metrics.jsonl, a missing file", () => {
    mkdirSync(join(dir, "empty"));
    expect(() => readMetrics(join(dir, "empty"), "loss")).toThrow(
      `${join(dir, "empty")}: a directory without metrics.jsonl (give a run directory or a metrics file)`,
    );
    expect(() => readMetrics(join(dir, "nothing.jsonl"), "loss")).toThrow(
      `${join(dir, "nothing.jsonl")}: no such file`,
    );
  });
});

describe("readRuns", () => {
  test("runs with the same directory name are labelled by the paths given", () => {
    const other = run(join(dir, "b", "pt"), j({ event: "step", step: 1, loss: 3 }));
    const sft = run(join(dir, "b", "sft"), j({ event: "step", step: 1, loss: 2 }));
    expect(readRuns([pt, `${other}/`, sft], "loss").map((r) => r.label)).toEqual([pt, other, "sft"]);
  });

  test("a metric no line has: refused with the closest field and the fields there are", () => {
    expect(() => readRuns([pt], "los")).toThrow(
      "--metric los: no step or eval line has it (did you mean loss?); the lines have grad_norm, learning_rate, loss, val_loss, val_tokens",
    );
    expect(() => readRuns([pt], "reward")).toThrow(
      "--metric reward: no step or eval line has it; the lines have grad_norm, learning_rate, loss, val_loss, val_tokens",
    );
    expect(() => readRuns([], "loss")).toThrow("give one or more metrics.jsonl files or run directories");
  });
});
