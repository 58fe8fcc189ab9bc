// bun cmd/grpo.ts --data SHARD_DIR --out RUN_DIR --init CKPT_DIR (--reward FILE.ts | --reward-cmd CMD) [--group-size 4] [...]
// Common flags: bun cmd/grpo.ts --help. Prints JSONL events on stdout (step, eval, checkpoint, summary),
// also appended to RUN_DIR/metrics.jsonl; progress on stderr on a TTY.
import { defineCommand } from "citty";
import { trainArgs, runTraining } from "./_train.ts";
import { runCli } from "./_cli.ts";

export const command = defineCommand({
  meta: {
    name: "grpo",
    description:
      "GRPO on `pack grpo` shards: sample groups, reward, group-normalized advantages, clipped ratio, KL to a reference",
  },
  args: trainArgs("grpo"),
  run: ({ rawArgs }) => runTraining("grpo", rawArgs),
});

if (import.meta.main) await runCli(command);
