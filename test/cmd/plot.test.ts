// plot end to end: its help names the runs it takes, a picture at --out (SVG or PNG, the output
// policy of lib/io/out_dir.ts), a text chart on a terminal (through `script`, a pseudo-terminal) or
// with --ascii, colour only on a terminal and never with NO_COLOR, and one-line refusals.
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readRuns } from "../../lib/io/metrics.ts";
import { chartSize, renderAscii } from "../../lib/plot/ascii.ts";
import { PNG_SIGNATURE } from "../../lib/plot/png.ts";
import { bun, events, root, sh, tmp } from "../train/helpers.ts";
import { mkdirSync } from "node:fs";

const dir = tmp("plot");

function runDir(name: string, k: number): string {
  const d = join(dir, name);
  mkdirSync(d);
  const lines = [JSON.stringify({ event: "start", strategy: "seq" })];
  for (let i = 1; i <= 40; i++) {
    lines.push(JSON.stringify({ event: "step", step: i, loss: 6 * Math.exp(-i / k) + 2, learning_rate: 3e-4 }));
    if (i % 20 === 0) lines.push(JSON.stringify({ event: "eval", step: i, val_loss: 6 * Math.exp(-i / k) + 2.3 }));
  }
  writeFileSync(join(d, "metrics.jsonl"), `${lines.join("\n")}\n`);
  return d;
}
const a = runDir("pt", 10),
  b = runDir("sft", 6);

/** plot on a pseudo-terminal of `cols` x `rows`, with `env` added; stdout and stderr arrive together. */
function onTty(args: string[], env: Record<string, string> = {}, cols = 100, rows = 30): string {
  const cmd = `stty cols ${cols} rows ${rows}; ${[bun, "cmd/plot.ts", ...args].map((s) => `'${s}'`).join(" ")}`;
  const p = Bun.spawnSync(["script", "-qec", cmd, "/dev/null"], {
    cwd: root,
    env: { ...process.env, CI: "", TERM: "xterm", NO_COLOR: "", ...env },
  });
  return p.stdout.toString().replace(/\r\n/g, "\n");
}

const oneLine = (r: { code: number | null; err: string }, text: string) => {
  expect(r.code).toBe(1);
  expect(r.err).toBe(`bunlm: error: ${text}\n`);
};

test("--help names the runs plot takes", () => {
  const r = sh(["cmd/plot.ts", "--help"]);
  expect(r.code).toBe(0);
  expect(r.out).toContain("Usage: bunlm plot [options] RUN...");
  expect(r.out).toContain("  RUN...  metrics.jsonl files or run directories, one curve each");
  expect(r.out).toMatch(/--out VALUE +picture to write, \.svg or \.png/);
  expect(r.out).toMatch(/--ascii +draw the text chart on stdout even when not a terminal/);
});

describe("pictures", () => {
  test("--out x.png writes a PNG and the summary line; again needs --overwrite", () => {
    const out = join(dir, "loss.png");
    const r = sh(["cmd/plot.ts", a, b, "--out", out, "--smooth", "0.5"]);
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expect(events(r.out)).toEqual([
      {
        event: "summary",
        out,
        runs: [
          { label: "pt", points: 40, evals: 2, last: 6 * Math.exp(-4) + 2 },
          { label: "sft", points: 40, evals: 2, last: 6 * Math.exp(-40 / 6) + 2 },
        ],
      },
    ]);
    const png = readFileSync(out);
    expect([...png.subarray(0, 8)]).toEqual([...PNG_SIGNATURE]);
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([800, 480]);
    oneLine(
      sh(["cmd/plot.ts", a, "--out", out]),
      `--out: ${out} holds an earlier \`plot\` output; add --overwrite to replace it`,
    );
    expect(sh(["cmd/plot.ts", a, "--out", out, "--overwrite"]).code).toBe(0);
  });

  test("--out x.svg writes SVG; a file plot did not write is never replaced", () => {
    const svg = join(dir, "loss.svg");
    expect(sh(["cmd/plot.ts", a, "--out", svg]).code).toBe(0);
    expect(readFileSync(svg, "utf8")).toStartWith('<svg xmlns="http://www.w3.org/2000/svg" width="800" height="480"');
    const paper = join(dir, "paper.png");
    writeFileSync(paper, "my figure");
    oneLine(
      sh(["cmd/plot.ts", a, "--out", paper, "--overwrite"]),
      `--out: ${paper} exists and was not written by \`plot\`; give a new file name`,
    );
    expect(readFileSync(paper, "utf8")).toBe("my figure");
  });

  test("refusals: another extension, --ascii with --out, no runs", () => {
    const jpg = join(dir, "loss.jpg");
    oneLine(
      sh(["cmd/plot.ts", a, "--out", jpg]),
      `--out ${jpg}: plot draws SVG or PNG; give a name ending in .svg or .png`,
    );
    oneLine(
      sh(["cmd/plot.ts", a, "--ascii", "--out", join(dir, "x.svg")]),
      "--ascii draws on stdout: give --ascii or --out",
    );
    oneLine(
      sh(["cmd/plot.ts", a, "--metric", "lr", "--ascii"]),
      "--metric lr: no step or eval line has it; the lines have learning_rate, loss, val_loss",
    );
  });
});

describe("the text chart", () => {
  test("off a terminal, no --out is refused, naming --out", () => {
    oneLine(
      sh(["cmd/plot.ts", a]),
      "--out is required when stdout is not a terminal (.svg or .png; or --ascii for a text chart)",
    );
  });

  test("--ascii into a pipe: the chart lib renders for an 80-column terminal, without colour", () => {
    const r = sh(["cmd/plot.ts", a, b, "--ascii", "--smooth", "0.3"]);
    expect(r.code).toBe(0);
    const want = renderAscii(readRuns([a, b], "loss"), {
      ...chartSize(undefined, undefined, 3),
      metric: "loss",
      smooth: 0.3,
      title: "loss per step",
      colour: false,
    });
    expect(r.out).toBe(want);
    expect(r.out).toContain("• pt  40 points, last 2.1099, min 2.1099, max 7.429");
  });

  test("on a terminal without --out: the chart, sized to it, in colour; NO_COLOR turns colour off", () => {
    const out = onTty([a, b]);
    const plain = renderAscii(readRuns([a, b], "loss"), {
      ...chartSize(100, 30, 3),
      metric: "loss",
      smooth: 0,
      title: "loss per step",
      colour: false,
    });
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ESC that starts a colour code
    expect(out.replace(/\x1b\[\d+m/g, "")).toBe(plain);
    expect(out).toContain("\x1b[34m•\x1b[0m pt");
    expect(out).toContain("\x1b[31m+\x1b[0m sft");
    expect(onTty([a, b], { NO_COLOR: "1" })).toBe(plain);
  });
});
