// bun cmd/merge.ts --adapter DIR [--base DIR] --out DIR [--overwrite]
// Folds a LoRA adapter (PEFT's adapter_model.safetensors + adapter_config.json, as sft/dpo/grpo
// --lora-rank save them) into its base: W + (α/r)·B·A for every adapted projection, written as a
// whole model in the base's layout and dtype, with the base's tokenizer and generation config.
// --base defaults to the directory adapter_config.json names. Prints one JSON line.
import { defineCommand } from "citty";
import { initGpu } from "../lib/gpu/index.ts";
import { checkOutDir } from "../lib/io/out_dir.ts";
import { MERGED_FILES, mergeAdapter } from "../lib/model/lora.ts";
import { runCli } from "./_cli.ts";

export const command = defineCommand({
  meta: { name: "merge", description: "Merge a LoRA adapter into its base model's weights" },
  args: {
    adapter: {
      type: "string",
      required: true,
      description: "LoRA adapter directory (adapter_config.json + adapter_model.safetensors)",
    },
    base: { type: "string", description: "base model directory (unset: the one adapter_config.json names)" },
    out: { type: "string", required: true, description: "directory for the merged model" },
    overwrite: { type: "boolean", default: false, description: "replace an earlier merge in --out" },
  },
  async run({ args }) {
    checkOutDir(args.out, {
      flag: "--out",
      command: "merge",
      isEarlier: (_dir, entries) =>
        entries.includes("model.safetensors") && entries.every((e) => MERGED_FILES.includes(e)),
      overwrite: args.overwrite,
    });
    await initGpu();
    const r = await mergeAdapter(args.base ?? null, args.adapter, args.out);
    console.log(
      JSON.stringify({
        event: "merged",
        out: args.out,
        base: r.base,
        adapter: args.adapter,
        dtype: r.dtype,
        weights: r.merged,
      }),
    );
  },
});

if (import.meta.main) await runCli(command);
