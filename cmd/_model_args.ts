// The flags of the commands that only read a model (generate, chat, eval): which model, which LoRA
// adapter on it. Apart from cmd/_cli.ts so that commands that never load a model do not load lib/model.
import { InputError } from "../lib/base/errors.ts";
import { adapterBase } from "../lib/model/lora.ts";

/** --ckpt and --adapter of the commands that only read a model (generate, chat, eval). */
export const MODEL_ARGS = {
  ckpt: {
    type: "string",
    valueHint: "DIR",
    description:
      "model directory: config.json + safetensors, ours or Hugging Face's (with --adapter: its base, by default the one it names)",
  },
  adapter: {
    type: "string",
    valueHint: "DIR",
    description: "a LoRA adapter directory (adapter_config.json + adapter_model.safetensors)",
  },
} as const;

/** The model directory --ckpt names, or the base the --adapter names. */
export function modelDir(args: { ckpt?: string; adapter?: string }): string {
  if (args.ckpt !== undefined) return args.ckpt;
  if (args.adapter !== undefined) return adapterBase(args.adapter);
  throw new InputError("give --ckpt DIR (or --adapter DIR)");
}

/** --weights of the commands that only read a model (generate, chat, eval). */
export const WEIGHTS_ARG = {
  type: "enum",
  options: ["stored", "f32"],
  default: "stored",
  valueHint: "stored|f32",
  description:
    "weights on the device: stored keeps a BF16/F16 checkpoint's matrices in that width (half the memory, the same results); f32 widens them",
} as const;
