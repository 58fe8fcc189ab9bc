// bun cmd/sft.ts --data SHARD_DIR --out RUN_DIR --init CKPT_DIR [...]
// Common flags: bun cmd/sft.ts --help. Prints JSONL events on stdout (step, eval, checkpoint, summary),
// also appended to RUN_DIR/metrics.jsonl; progress on stderr on a TTY.
import { defineCommand } from "citty";
import { trainArgs, runTraining } from "./_train.ts";
import { runCli } from "./_cli.ts";

export const command = defineCommand({
  meta: { name: "sft", description: "Supervised fine-tuning: loss on the assistant's tokens of `pack sft` shards" },
  args: trainArgs("sft"),
  run: ({ rawArgs }) => runTraining("sft", rawArgs),
});

if (import.meta.main) await runCli(command);
