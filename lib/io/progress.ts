// A progress line for long reads and writes (tokenize, pack): the status line of log.ts, so it is
// shown only on a TTY, never with --quiet, and cleared before any other output; redrawn at most 5x/s.
import { clearStatus, setStatus, statusVisible } from "../base/log.ts";

export interface Progress {
  update(done: number, total?: number, extra?: string): void;
  end(): void;
}

function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

export function progress(label: string, unit = "B"): Progress {
  let last = 0;
  const t0 = performance.now();
  return {
    update(done, total, extra = "") {
      if (!statusVisible()) return;
      const now = performance.now();
      if (now - last < 200) return;
      last = now;
      const rate = done / ((now - t0) / 1000);
      const pct = total ? ` ${((100 * done) / total).toFixed(1)}%` : "";
      setStatus(`${label}${pct} ${human(done)}${unit} (${human(rate)}${unit}/s)${extra ? ` ${extra}` : ""}`);
    },
    end() {
      clearStatus();
    },
  };
}
