// What a training strategy (seq, sft, dpo, grpo) provides to the loop: the dataset keys it reads,
// how many units (trained tokens, pairs, sequences) a micro-batch contributes to the accumulation
// window's normalizer, and the forward + backward of one micro-batch. Losses are normalized by the
// whole window's count, so accumulating A micro-batches equals one batch A times as big.
import type { Tensor } from "../tensor/tensor.ts";
import type { RowValues } from "./dataset.ts";
import type { Trainer } from "./trainer.ts";

export interface BatchResult {
  /** this micro-batch's share of the window loss: a (1) tensor read with the step, or a number */
  loss: Tensor | number;
  /** additive shares of the step's metrics (already divided by the window count) */
  metrics?: Record<string, number>;
  /** tokens processed (for tokens/s) */
  tokens: number;
}

export interface Strategy {
  name: "seq" | "sft" | "dpo" | "grpo";
  /** dataset keys this strategy reads */
  keys: string[];
  init?(t: Trainer): Promise<void>;
  count(rows: RowValues, n: number): number;
  batch(t: Trainer, rows: RowValues, idx: Uint32Array, windowCount: number): Promise<BatchResult>;
  /** validation loss share of one batch (no gradients), when the strategy has one */
  evalBatch?(t: Trainer, rows: RowValues, n: number): Promise<{ loss: number; count: number }>;
  onStepEnd?(t: Trainer): Promise<void>;
  dispose?(): void | Promise<void>;
}
