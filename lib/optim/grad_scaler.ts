// Dynamic loss scaling for mixed precision, in one object (PyTorch's GradScaler is the shape): the
// factor backward seeds the loss gradient with, so small gradients survive f16 matmul operands; the
// decision after each step (scaled gradients that overflowed: skip the update and halve the scale;
// after `window` good steps in a row: double it, up to 2^24); and the state a checkpoint keeps. The
// optimizer divides the factor back out when it computes the gradient norm (AdamW.computeNorm).
// Disabled (f32 training), the factor is 1 and every step is applied.

export interface ScalerState {
  loss_scale: number;
  loss_scale_good_steps: number;
}

const MAX_SCALE = 2 ** 24;

export class GradScaler {
  private scale_: number;
  private good: number;

  constructor(
    readonly enabled: boolean,
    init: number,
    readonly window: number,
    state?: Partial<ScalerState>,
  ) {
    this.scale_ = enabled ? (state?.loss_scale ?? init) : 1;
    this.good = enabled ? (state?.loss_scale_good_steps ?? 0) : 0;
  }

  /** the factor the loss gradient is seeded with (1 when disabled) */
  get scale(): number {
    return this.scale_;
  }

  /**
   * After a step whose loss is finite (a non-finite loss is the run diverging, not the scale):
   * whether to apply its update. A non-finite gradient norm is an f16 overflow: skip, and halve the
   * scale. Otherwise apply, and count the step towards doubling it.
   */
  update(normFinite: boolean): "apply" | "skip" {
    if (!this.enabled) return "apply";
    if (!normFinite) {
      this.scale_ = Math.max(1, this.scale_ / 2);
      this.good = 0;
      return "skip";
    }
    if (++this.good >= this.window) {
      this.good = 0;
      this.scale_ = Math.min(this.scale_ * 2, MAX_SCALE);
    }
    return "apply";
  }

  state(): ScalerState {
    return { loss_scale: this.scale_, loss_scale_good_steps: this.good };
  }
}
