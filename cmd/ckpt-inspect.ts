// bun cmd/ckpt-inspect.ts PATH [--stats] [--tensor NAME [--rows a:b]] [--diff OTHER] [--json]
// PATH: a checkpoint directory (a LoRA adapter's too: its tensors, rank, α, targets and base), a .safetensors file (ours, Hugging Face's, anyone's) or a shard
// directory. One JSON line per tensor, then a summary line; on a TTY without --json, a table.
// Headers are read without loading the file; tensors are memory-mapped and visited one at a time.
import { defineCommand } from "citty";
import { InputError } from "../lib/base/errors.ts";
import { diffTargets, tensorValues } from "../lib/io/inspect.ts";
import { clearStatus, color } from "../lib/base/log.ts";
import {
  formatTable,
  inspectSummary,
  inspectTarget,
  type Row,
  rowRecord,
  summaryText,
  tensorRows,
} from "../lib/model/inspect.ts";
import { runCli } from "./_cli.ts";

export const command = defineCommand({
  meta: { name: "ckpt-inspect", description: "Look inside checkpoints, safetensors files and data shards" },
  args: {
    path: { type: "positional", required: true, description: "checkpoint dir, .safetensors file or shard dir" },
    stats: { type: "boolean", default: false, description: "mean, std, min, max, L2 norm, NaN/Inf counts per tensor" },
    tensor: { type: "string", description: "print this tensor's values" },
    rows: { type: "string", description: "with --tensor: rows a:b of the first axis" },
    diff: {
      type: "string",
      description: "compare with another checkpoint/file: per-tensor max abs and relative difference",
    },
    json: { type: "boolean", default: false, description: "JSONL even on a TTY" },
  },
  async run({ args }) {
    if (args.rows !== undefined && args.tensor === undefined) throw new InputError("--rows needs --tensor NAME");
    const t = inspectTarget(args.path);
    const out = (o: unknown) => console.log(JSON.stringify(o));
    if (args.tensor !== undefined) return out(tensorValues(t, args.tensor, args.rows));
    if (args.diff !== undefined) {
      for (const rec of diffTargets(t, inspectTarget(args.diff))) out(rec);
      return;
    }
    const table = Boolean(process.stdout.isTTY) && !args.json;
    const rows: Row[] = [];
    for await (const r of tensorRows(t, args.stats)) {
      rows.push(r);
      if (!table) out(rowRecord(r));
    }
    const summary = inspectSummary(t, rows);
    if (!table) return out(summary);
    clearStatus();
    console.log(formatTable(rows, args.stats, color));
    console.log(summaryText(summary));
  },
});

if (import.meta.main) await runCli(command);
