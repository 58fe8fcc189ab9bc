// A progress line on stderr, shown only on a TTY (logs and pipes stay clean), redrawn at most 5x/s.
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
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI;
  let last = 0;
  let shown = false;
  const t0 = performance.now();
  return {
    update(done, total, extra = "") {
      if (!tty) return;
      const now = performance.now();
      if (now - last < 200) return;
      last = now;
      const rate = done / ((now - t0) / 1000);
      const pct = total ? ` ${((100 * done) / total).toFixed(1)}%` : "";
      process.stderr.write(
        `\r\x1b[K${label}${pct} ${human(done)}${unit} (${human(rate)}${unit}/s)${extra ? " " + extra : ""}`,
      );
      shown = true;
    },
    end() {
      if (shown) process.stderr.write("\r\x1b[K");
    },
  };
}
