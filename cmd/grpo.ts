// bun cmd/grpo.ts --data SHARD_DIR --out RUN_DIR --init CKPT_DIR (--reward FILE.ts | --reward-cmd CMD) [--group-size 4] [...]
// Common flags: bun cmd/grpo.ts --help. Prints JSONL events on stdout (step, eval, checkpoint, summary),
// also appended to RUN_DIR/metrics.jsonl; progress on stderr on a TTY.
import { defineCommand } from "citty";
import { commonArgs, runTraining } from "../lib/train/cli.ts";
import { runCli } from "../lib/io/cli.ts";

export const command = defineCommand({
  meta: { name: "grpo", description: "GRPO on `pack grpo` shards: sample groups, reward, group-normalized advantages, clipped ratio, KL to a reference" },
  args: {
    ...commonArgs,
    "group-size": { type: "string", description: "responses sampled per prompt (4)" },
    "max-new-tokens": { type: "string", description: "response length limit (64)" },
    temperature: { type: "string", description: "sampling temperature (1.0)" },
    "top-p": { type: "string", description: "nucleus sampling threshold (1.0)" },
    "clip-eps": { type: "string", description: "ratio clip ε (0.2)" },
    "kl-coef": { type: "string", description: "KL penalty β (0.01)" },
    "sync-interval": { type: "string", description: "re-sync the reference to the policy every K steps (200; 0 = never)" },
    reward: { type: "string", description: "TS module exporting reward(prompt, response, row)" },
    "reward-cmd": { type: "string", description: "command: JSON lines in on stdin, one number per line out" },
  },
  run: ({ args }) => runTraining("grpo", args),
});

if (import.meta.main) await runCli(command);
