// bun cmd/dpo.ts --data SHARD_DIR --out RUN_DIR --init CKPT_DIR [--beta 0.1] [--reduction sum|mean] [...]
// Common flags: bun cmd/dpo.ts --help. Prints JSONL events on stdout (step, eval, checkpoint, summary),
// also appended to RUN_DIR/metrics.jsonl; progress on stderr on a TTY.
import { defineCommand } from "citty";
import { trainArgs, runTraining } from "./_train.ts";
import { runCli } from "./_cli.ts";

export const command = defineCommand({
  meta: {
    name: "dpo",
    description: "Direct Preference Optimization on `pack dpo` shards against the frozen starting weights",
  },
  args: trainArgs("dpo"),
  run: ({ rawArgs }) => runTraining("dpo", rawArgs),
});

if (import.meta.main) await runCli(command);
