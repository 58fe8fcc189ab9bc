// seq (pre-training) and sft: next-token cross-entropy over the rows pack wrote, with optional label
// smoothing. seq trains every target; sft only targets whose loss_mask is 1 (the assistant's
// tokens), the others becoming the ignore index. Positions come from position_ids when present, so
// packed documents and conversations do not attend to each other.
import { Tensor } from "../../tensor/tensor.ts";
import { noGrad } from "../../tensor/autograd.ts";
import { forward, plainPositions } from "../../model/transformer.ts";
import { crossEntropy, IGNORE_INDEX } from "../../ops/cross_entropy.ts";
import { add, scale } from "../../ops/elementwise.ts";
import { auxLoss, collectRouting, expertLoadMax } from "../../model/moe.ts";
import type { RowValues } from "../dataset.ts";
import type { Strategy } from "../strategy.ts";
import type { Trainer } from "../trainer.ts";

function targetsOf(rows: RowValues, masked: boolean): Int32Array {
  const t = Int32Array.from(rows.target_ids as Int32Array);
  if (masked) {
    const m = rows.loss_mask as Uint8Array;
    for (let i = 0; i < t.length; i++) if (!m[i]) t[i] = IGNORE_INDEX;
  }
  return t;
}

export function nextTokenStrategy(kind: "seq" | "sft", hasPositions: boolean): Strategy {
  const masked = kind === "sft";
  const keys = ["input_ids", "target_ids", ...(hasPositions ? ["position_ids"] : []), ...(masked ? ["loss_mask"] : [])];
  const run = (t: Trainer, rows: RowValues, n: number, norm: number, smoothing: number) => {
    const L = t.seqLen;
    const pos = hasPositions ? (rows.position_ids as Int32Array) : plainPositions(n, L);
    const logits = forward(
      t.model,
      t.params,
      Tensor.from(rows.input_ids as Int32Array, [n * L], "i32"),
      Tensor.from(pos, [n * L], "i32"),
      n,
      L,
    );
    return crossEntropy(logits, Tensor.from(targetsOf(rows, masked), [n * L], "i32"), {
      labelSmoothing: smoothing,
      normalizer: norm,
    });
  };
  return {
    name: kind,
    keys,
    count(rows) {
      if (!masked) return (rows.target_ids as Int32Array).length;
      let c = 0;
      for (const x of rows.loss_mask as Uint8Array) c += x;
      return c;
    },
    async batch(t, rows, idx, windowCount) {
      const { value: ce, routing } = collectRouting(() => run(t, rows, idx.length, windowCount, t.cfg.label_smoothing));
      // mixture of experts: the load-balancing loss, a mean over this micro-batch's tokens, joins the
      // loss backward runs from, weighted by the micro-batch's share of the window's trained tokens
      const aux = auxLoss(routing);
      const auxShare = aux && scale(aux, this.count(rows, idx.length) / windowCount);
      const loss = auxShare ? add(ce, auxShare) : ce;
      t.backward(loss);
      if (!routing.length) return { loss, tokens: idx.length * t.seqLen };
      const metrics = {
        aux_loss: auxShare ? (await auxShare.toArray())[0]! : 0,
        // a mean over the micro-batches and ranks (metrics are summed over both)
        expert_load_max: (await expertLoadMax(routing)) / (t.cfg.accumulation_steps * (t.dp?.size ?? 1)),
      };
      return { loss, tokens: idx.length * t.seqLen, metrics };
    },
    async evalBatch(t, rows, n) {
      const count = this.count(rows, n);
      if (count === 0) return { loss: 0, count: 0 };
      const l = noGrad(() => run(t, rows, n, 1, 0)); // plain cross-entropy, summed over the batch's trained tokens
      return { loss: (await l.toArray())[0]!, count };
    },
  };
}
