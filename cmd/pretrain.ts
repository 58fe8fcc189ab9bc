// bun cmd/pretrain.ts --data SHARD_DIR --out RUN_DIR (--model MODEL.json | --init CKPT | --resume CKPT) [--label-smoothing E] [...]
// Common flags: bun cmd/pretrain.ts --help. Prints JSONL events on stdout (step, eval, checkpoint, summary),
// also appended to RUN_DIR/metrics.jsonl; progress on stderr on a TTY.
import { defineCommand } from "citty";
import { trainArgs, runTraining } from "./_train.ts";
import { runCli } from "./_cli.ts";

export const command = defineCommand({
  meta: { name: "pretrain", description: "Pre-train: next-token cross-entropy on `pack seq` shards" },
  args: trainArgs("seq"),
  run: ({ rawArgs }) => runTraining("seq", rawArgs),
});

if (import.meta.main) await runCli(command);
