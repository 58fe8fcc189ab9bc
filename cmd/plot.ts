// bun cmd/plot.ts RUN... [--out loss.svg|loss.png] [--metric loss] [--smooth 0.6] [--title TEXT]
// Metric curves of one or more runs (metrics.jsonl files or run directories), overlaid on shared
// axes: a picture at --out (SVG, or PNG through resvg), or without --out on a terminal a text chart
// for a quick look over ssh (--ascii draws it into a pipe too).
import { defineCommand } from "citty";
import { InputError } from "../lib/base/errors.ts";
import { writeFileAtomic } from "../lib/io/files.ts";
import { clearStatus, color } from "../lib/base/log.ts";
import { readRuns } from "../lib/io/metrics.ts";
import { checkOutFile } from "../lib/io/out_dir.ts";
import { chartSize, renderAscii } from "../lib/plot/ascii.ts";
import { isPlotFile } from "../lib/plot/mark.ts";
import { pictureFormat, plotSummary, renderPicture } from "../lib/plot/picture.ts";
import { smoothFactor } from "../lib/plot/scale.ts";
import { runCli } from "./_cli.ts";

export const command = defineCommand({
  meta: { name: "plot", description: "Draw metric curves of runs (several overlaid) as SVG, PNG or a terminal chart" },
  args: {
    runs: {
      type: "positional",
      required: true,
      valueHint: "RUN...",
      description: "metrics.jsonl files or run directories, one curve each",
    },
    out: {
      type: "string",
      description: "picture to write, .svg or .png (new, or an earlier plot with --overwrite); none: a terminal chart",
    },
    ascii: { type: "boolean", default: false, description: "draw the text chart on stdout even when not a terminal" },
    overwrite: { type: "boolean", default: false, description: "replace an earlier plot at --out" },
    metric: { type: "string", default: "loss", description: "the step field to plot (val_loss: the eval points)" },
    smooth: { type: "string", default: "0", description: "exponential smoothing factor in [0, 1)" },
    title: { type: "string", default: "", description: "title (empty: METRIC per step)" },
  },
  async run({ args }) {
    const smooth = smoothFactor(args.smooth);
    const tty = Boolean(process.stdout.isTTY);
    const out = args.out;
    if (out !== undefined && args.ascii) throw new InputError("--ascii draws on stdout: give --ascii or --out");
    if (out === undefined && !args.ascii && !tty)
      throw new InputError(
        "--out is required when stdout is not a terminal (.svg or .png; or --ascii for a text chart)",
      );
    const format = out === undefined ? null : pictureFormat(out);
    if (out !== undefined)
      checkOutFile(out, { flag: "--out", command: "plot", overwrite: args.overwrite, isEarlier: isPlotFile });
    const series = readRuns(args._ as string[], args.metric);
    const o = { metric: args.metric, smooth, title: args.title || `${args.metric} per step` };
    if (out === undefined || format === null) {
      const size = chartSize(process.stdout.columns, process.stdout.rows, series.length + 1);
      clearStatus();
      process.stdout.write(renderAscii(series, { ...o, ...size, colour: color && tty }));
      return;
    }
    writeFileAtomic(out, await renderPicture(series, o, format, out));
    console.log(JSON.stringify(plotSummary(out, series)));
  },
});

if (import.meta.main) await runCli(command);
