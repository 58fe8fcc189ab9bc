// TrainContextBuilder: from a validated TrainConfig, assemble what a run needs — data (and the
// validation split), model (new from --model, weights from --init, or everything from --resume),
// optimizer, sampler, strategy, callbacks — and check that they belong together before any step.
import { existsSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../base/errors.ts";
import { parseModelConfig, type ModelConfig } from "../model/config.ts";
import { initParams, namedParams, type ModelParams } from "../model/params.ts";
import { loadModel } from "../model/checkpoint.ts";
import {
  LORA_TARGETS,
  adapterBase,
  attachLora,
  isAdapterDir,
  loadAdapter,
  readAdapterConfig,
  type LoraSpec,
} from "../model/lora.ts";
import { AdamW } from "../optim/adamw.ts";
import { Muon, type Optimizer } from "../optim/muon.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { ShardDataset } from "./dataset.ts";
import { Sampler } from "./sampler.ts";
import { Trainer, type TrainLora } from "./trainer.ts";
import { MetricsCallback, ProgressCallback, CheckpointCallback, type Callback } from "./callbacks.ts";
import { loadUserCallback } from "./user_callback.ts";
import { readJsonObject } from "../io/files.ts";
import { readMeta, loadOptimizer, type Meta } from "./checkpoint.ts";
import { nextTokenStrategy } from "./strategies/seq.ts";
import { dpoStrategy } from "./strategies/dpo.ts";
import { grpoStrategy } from "./strategies/grpo.ts";
import type { TrainConfig } from "./config.ts";
import type { Strategy } from "./strategy.ts";
import type { DataParallel } from "./dist.ts";

export type Kind = "seq" | "sft" | "dpo" | "grpo";

export class TrainContextBuilder {
  constructor(
    readonly kind: Kind,
    readonly cfg: TrainConfig,
    readonly onEvent?: (line: string) => void,
    /** the ranks of a data-parallel run: rank 0 alone reports and writes --out */
    readonly dp: DataParallel | null = null,
  ) {}

  private data(): { data: ShardDataset; val: ShardDataset | null } {
    const data = new ShardDataset(this.cfg.data, "train");
    const t = data.manifest.type;
    if (t !== this.kind)
      throw new InputError(`${this.cfg.data}: holds ${t} shards; this command trains on \`pack ${this.kind}\` shards`);
    if (this.kind === "sft" && data.trainedTokens === 0)
      throw new InputError(
        `${this.cfg.data}: no trained tokens (no assistant reply survived packing: none in the data, or all cut off by --seq-len); sft trains only on the assistant's tokens`,
      );
    const val = data.manifest.rows.val > 0 ? new ShardDataset(this.cfg.data, "val") : null;
    return { data, val };
  }

  private tokenizer(data: ShardDataset): { tok: Tokenizer | null; dir?: string } {
    const dir = data.manifest.tokenizer.path;
    if (!dir || !existsSync(join(dir, "tokenizer.json"))) return { tok: null };
    const tok = Tokenizer.fromDir(dir);
    if (tok.hash !== data.manifest.tokenizer.hash)
      throw new InputError(
        `${dir}: the tokenizer changed since ${this.cfg.data} was packed (hash ${tok.hash}, shards say ${data.manifest.tokenizer.hash}); pack again`,
      );
    return { tok, dir };
  }

  private model(data: ShardDataset): { model: ModelConfig; params: ModelParams; meta?: Meta } {
    const c = this.cfg;
    const checkSameTokenizer = (dir: string, flag: string) => {
      if (!existsSync(join(dir, "meta.json"))) return undefined;
      const meta = readMeta(dir);
      if (meta.data.tokenizer_hash !== data.manifest.tokenizer.hash)
        throw new InputError(
          `${flag} ${dir} was trained with another tokenizer (hash ${meta.data.tokenizer_hash}) than ${c.data} was packed with (${data.manifest.tokenizer.hash})`,
        );
      return meta;
    };
    let out: { model: ModelConfig; params: ModelParams; meta?: Meta };
    if (c.resume) {
      const meta = checkSameTokenizer(c.resume, "--resume") ?? readMeta(c.resume);
      if (isAdapterDir(c.resume) !== (c.lora_rank !== undefined))
        throw new InputError(
          `--resume ${c.resume}: ${c.lora_rank !== undefined ? "holds no LoRA adapter, but --lora-rank is given" : "holds a LoRA adapter; its run's config should carry --lora-rank"}`,
        );
      // a LoRA checkpoint holds the adapters only: the weights are its base's
      const m = loadModel(c.lora_rank !== undefined ? adapterBase(c.resume) : c.resume);
      out = { model: m.config, params: m.params, meta };
    } else if (c.init) {
      checkSameTokenizer(c.init, "--init");
      const m = loadModel(c.init);
      out = { model: m.config, params: m.params };
    } else {
      if (!c.model)
        throw new InputError("give --model MODEL_CONFIG.json (a new model), --init CKPT_DIR or --resume CKPT_DIR");
      const raw: any = readJsonObject(c.model);
      raw.vocab_size ??= data.manifest.tokenizer.vocab_size;
      // room for later stages with longer rows (RoPE has no table to size), and at least this stage's
      raw.max_position_embeddings ??= Math.max(2048, this.longest(data));
      raw.eos_token_id ??= data.manifest.tokenizer.eos_id;
      raw.pad_token_id ??= data.manifest.tokenizer.pad_id;
      const model = parseModelConfig(raw, c.model);
      out = { model, params: initParams(model, c.seed) };
    }
    const { model } = out;
    // a mixture-of-experts layer records its routing for the auxiliary loss during the forward; a
    // recomputed layer would free it before the loss reads it
    if (c.recompute && model.moe)
      throw new InputError("--recompute does not cover mixture-of-experts layers yet; train this model without it");
    if (model.vocab_size < data.manifest.tokenizer.vocab_size)
      throw new InputError(
        `the model's vocab_size ${model.vocab_size} is smaller than the tokenizer's ${data.manifest.tokenizer.vocab_size} that ${c.data} was packed with`,
      );
    const need = this.longest(data);
    if (model.max_position_embeddings < need)
      throw new InputError(
        `sequences of ${need} tokens exceed the model's max_position_embeddings ${model.max_position_embeddings}`,
      );
    return out;
  }

  /** The longest sequence the stage runs: online GRPO appends up to max_new_tokens sampled ones; offline GRPO scores the packed responses. */
  private longest(data: ShardDataset): number {
    const m = data.manifest;
    if (this.kind !== "grpo") return m.seq_len;
    const offline = "responses" in m.keys;
    return m.seq_len + (offline ? Number(m.response_len) : this.cfg.max_new_tokens);
  }

  strategy(data: ShardDataset): Strategy {
    switch (this.kind) {
      case "seq":
      case "sft":
        return nextTokenStrategy(this.kind, "position_ids" in data.manifest.keys);
      case "dpo":
        return dpoStrategy();
      case "grpo":
        return grpoStrategy(data, this.cfg.group_size);
    }
  }

  async build(): Promise<Trainer> {
    const c = this.cfg;
    const { data, val } = this.data();
    const { tok, dir } = this.tokenizer(data);
    const { model, params, meta } = this.model(data);
    const lora = c.lora_rank !== undefined ? this.lora(params) : null;
    // with LoRA the adapters are the only trainable tensors (the base is frozen)
    const named = lora ? lora.adapters.named : namedParams(params);
    const adamCfg = { beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weight_decay, gradClip: c.grad_clip };
    const optimizer: Optimizer =
      c.optimizer === "muon"
        ? new Muon([...named.keys()], [...named.values()], adamCfg, {
            lr: c.muon_lr,
            maxLr: c.max_lr,
            momentum: c.muon_momentum,
            nesterov: true,
            nsSteps: c.muon_ns_steps,
            weightDecay: c.muon_weight_decay,
          })
        : new AdamW([...named.keys()], [...named.values()], adamCfg);
    if (c.resume) loadOptimizer(c.resume, optimizer, meta!.step);
    const sampler = new Sampler(data.rows, c.seed, true, meta?.sampler);
    const rank0 = (this.dp?.rank ?? 0) === 0;
    const metrics = new MetricsCallback(rank0 ? join(c.out, "metrics.jsonl") : null);
    // checkpoints are collective (every rank takes part, rank 0 writes); progress is rank 0's
    const callbacks: Callback[] = [metrics, ...(rank0 ? [new ProgressCallback()] : []), new CheckpointCallback()];
    for (const p of c.callback) callbacks.push(await loadUserCallback(p, c.callback_timeout * 1000));
    return new Trainer({
      cfg: c,
      strategy: this.strategy(data),
      model,
      params,
      optimizer,
      data,
      val,
      sampler,
      callbacks,
      metrics,
      tokenizer: tok,
      tokenizerDir: dir,
      resumed: meta,
      onEvent: rank0 ? this.onEvent : undefined,
      dp: this.dp,
      lora,
    });
  }

  /** --lora-rank: fresh adapters on the --init weights, or the --resume checkpoint's (its spec must be the config's). */
  private lora(params: ModelParams): TrainLora {
    const c = this.cfg;
    const spec: LoraSpec = {
      rank: c.lora_rank!,
      alpha: c.lora_alpha ?? 2 * c.lora_rank!,
      targets: LORA_TARGETS.filter((t) => c.lora_targets.includes(t)),
    };
    // the real path: a `latest` link moves on when its run trains further, the adapters' base must not
    if (!c.resume) return { adapters: attachLora(params, spec, c.seed + 29), base: realpathSync(c.init!) };
    const info = readAdapterConfig(c.resume);
    if (JSON.stringify(info.spec) !== JSON.stringify(spec))
      throw new InputError(
        `--resume ${c.resume}: its adapters are rank ${info.spec.rank}, α ${info.spec.alpha} on ${info.spec.targets.join(",")}; the run's config asks for rank ${spec.rank}, α ${spec.alpha} on ${spec.targets.join(",")}`,
      );
    return { adapters: loadAdapter(c.resume, params, info), base: adapterBase(c.resume, info) };
  }
}
