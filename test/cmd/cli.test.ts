// The command line as a whole: `bunlm` and its listing, help at every level with every option's
// default, flags from the schema, human messages, --quiet/--verbose, no colour off a terminal, a clean
// terminal under a progress line, one-line errors, --resume auto.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ArgsDef, CommandDef } from "citty";
import { commandNames, loadCommand } from "../../cmd/_bunlm.ts";
import { renderHelp } from "../../cmd/_cli.ts";
import { keysFor, TrainConfigSchema } from "../../lib/train/config.ts";
import { keyInfo } from "../../lib/base/schema_info.ts";
import { bun, events, root, seqData, sh, tmp } from "../train/helpers.ts";

const bunlm = join(root, "bin", "bunlm");
const run = (args: string[], env: Record<string, string> = {}) => {
  const p = Bun.spawnSync([bunlm, ...args], { cwd: root, env: { ...process.env, ...env } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

const dir = tmp("cli");
let d: ReturnType<typeof seqData>;
beforeAll(() => {
  d = seqData(dir);
});

/** Every (sub)command: its path from the top and its definition. */
async function everyCommand(): Promise<{ name: string; path: string[]; top: CommandDef<any>; cmd: CommandDef<any> }[]> {
  const out = [];
  for (const name of commandNames()) {
    const top = await loadCommand(name);
    out.push({ name, path: [], top, cmd: top });
    const subs = (top.subCommands ?? {}) as Record<string, CommandDef<any>>;
    for (const [k, s] of Object.entries(subs)) out.push({ name, path: [k], top, cmd: s });
  }
  return out;
}

describe("bunlm", () => {
  test("`bunlm --help` lists every command with its one-line description", async () => {
    const r = run(["--help"]);
    expect(r.code).toBe(0);
    for (const name of commandNames()) {
      const desc = ((await loadCommand(name)).meta as { description: string }).description;
      expect(r.out).toContain(`  ${name} `);
      expect(r.out).toContain(desc);
    }
    for (const name of [
      "tokenize",
      "pack",
      "pretrain",
      "sft",
      "dpo",
      "grpo",
      "generate",
      "chat",
      "ckpt-inspect",
      "plot",
    ])
      expect(commandNames()).toContain(name);
  });

  test("`bunlm X --help` is exactly `bun cmd/X.ts --help`, for every command and subcommand", async () => {
    for (const c of await everyCommand()) {
      const viaBin = run([c.name, ...c.path, "--help"]);
      const direct = sh([`cmd/${c.name}.ts`, ...c.path, "--help"]);
      expect(viaBin.code).toBe(0);
      expect(direct.code).toBe(0);
      expect(viaBin.out).toBe(direct.out);
      expect(direct.out).toStartWith(`Usage: bunlm ${[c.name, ...c.path].join(" ")} `);
    }
  });

  test("--version, and an unknown command with the closest name", () => {
    const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
    expect(run(["--version"]).out).toBe(`bunlm ${version}\n`);
    expect(sh(["cmd/pretrain.ts", "--version"]).out).toBe(`bunlm ${version}\n`);
    const r = run(["pretain"]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      'bunlm: error: unknown command "pretain" (did you mean pretrain?); `bunlm --help` lists the commands\n',
    );
  });
});

describe("help", () => {
  test("every option of every command appears in its --help, with its default", async () => {
    for (const c of await everyCommand()) {
      const help = await renderHelp(c.top, c.path);
      const args = (c.cmd.args ?? {}) as ArgsDef;
      for (const [name, def] of Object.entries(args)) {
        if (def.type === "positional") {
          expect(help).toContain(def.valueHint ?? name.toUpperCase());
          continue;
        }
        const line = help.split("\n").find((l) => new RegExp(`^  (-\\w, )?--(\\[no-\\])?${name}\\b`).test(l));
        expect(line, `${c.name} ${c.path.join(" ")} --${name}`).toBeDefined();
        if (def.default !== undefined && def.default !== false && def.default !== "")
          // a whitespace-only default is quoted, so it can be seen
          expect(line!).toContain(
            `(default: ${typeof def.default === "string" && !def.default.trim() ? JSON.stringify(def.default) : def.default})`,
          );
      }
      for (const common of ["--quiet", "--verbose", "--help"]) expect(help).toContain(common);
    }
  });

  test("a training command's help shows every key of the schema it uses, with the schema's default", async () => {
    const help = await renderHelp(await loadCommand("grpo"));
    for (const k of keysFor("grpo")) {
      const flag = `--${k.replace(/_/g, "-")}`;
      const line = help.split("\n").find((l) => l.startsWith(`  ${flag} `))!;
      expect(line, flag).toBeDefined();
      const info = keyInfo((TrainConfigSchema.entries as Record<string, unknown>)[k]);
      expect(line).toContain(info.description.slice(0, 20));
      // a switch that is off by default (--recompute) shows no default, as every boolean flag
      if (info.default !== undefined && info.default !== false && !Array.isArray(info.default))
        expect(line).toContain(`(default: ${info.default})`);
    }
    expect(help).not.toContain("--label-smoothing");
  });

  test("no colour codes in a pipe", () => {
    for (const args of [["pretrain", "--help"], ["tokenize", "train", "--help"], ["--help"]])
      expect(run(args).out).not.toContain("\x1b");
  });
});

describe("flags and messages", () => {
  test("--beta1 0.8 (a config-only key, space-separated) reaches the run's config", () => {
    const out = join(dir, "beta1");
    const r = run([
      "pretrain",
      "--data",
      d.data,
      "--out",
      out,
      "--model",
      d.model,
      "--max-steps",
      "1",
      "--batch-size",
      "2",
      "--beta1",
      "0.8",
      "--no-overwrite",
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, "step_000001", "meta.json"), "utf8")).config.beta1).toBe(0.8);
  });

  test("a flag given on the command line overrides --config; a default does not", () => {
    const cfg = join(dir, "cfg.json");
    writeFileSync(cfg, JSON.stringify({ batch_size: 3, max_lr: 1e-3 }));
    const out = join(dir, "cfg-run");
    const r = sh([
      "cmd/pretrain.ts",
      "--config",
      cfg,
      "--data",
      d.data,
      "--out",
      out,
      "--model",
      d.model,
      "--max-steps",
      "1",
      "--max-lr",
      "2e-3",
    ]);
    expect(r.code).toBe(0);
    const c = JSON.parse(readFileSync(join(out, "step_000001", "meta.json"), "utf8")).config;
    expect(c.batch_size).toBe(3);
    expect(c.max_lr).toBe(2e-3);
  });

  test("schema problems read like a person wrote them", () => {
    const missing = sh(["cmd/pretrain.ts", "--out", join(dir, "nothing")]);
    expect(missing.err).toBe("bunlm: error: --data is required\n");
    const unknown = sh(["cmd/sft.ts", "--data", d.data, "--bta1", "0.8"]);
    expect(unknown.err).toBe(
      "bunlm: error: unknown flag --bta1 (did you mean --beta1?); `bunlm sft --help` lists the flags\n",
    );
    const range = sh(["cmd/pretrain.ts", "--data", d.data, "--out", join(dir, "x"), "--beta2", "1"]);
    expect(range.err).toBe("bunlm: error: --beta2: must be in [0, 1) (got 1)\n");
    const both = sh(["cmd/pretrain.ts", "--data", d.data, "--quiet", "--verbose"]);
    expect(both.err).toBe("bunlm: error: --quiet and --verbose exclude each other\n");
  });

  test("a command with subcommands and none given names them", () => {
    const r = run(["tokenize"]);
    expect(r.code).toBe(1);
    expect(r.err).toBe("bunlm: error: bunlm tokenize needs a command: train, encode or decode\n");
  });

  test("a GPU command's error after the adapter is up is exactly one line on stderr", () => {
    const out = join(dir, "one-line");
    const t = sh(["cmd/pretrain.ts", "--data", d.data, "--out", out, "--model", d.model, "--max-steps", "1"]);
    expect(t.code).toBe(0);
    // the model loads onto the adapter before the prompt's ids are checked against its vocabulary
    const r = sh(["cmd/generate.ts", "--ckpt", join(out, "latest"), "--prompt-ids", "999999"]);
    expect(r.code).toBe(1);
    expect(r.err).toBe("bunlm: error: prompt token id 999999 is outside the model's vocabulary (400)\n");
  });
});

describe("the terminal", () => {
  test("under a terminal (script -qc) no JSON line starts after progress text on the same line", () => {
    const out = join(dir, "tty");
    const cmd = [
      bun,
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--out",
      out,
      "--model",
      d.model,
      "--max-steps",
      "6",
      "--batch-size",
      "2",
    ].join(" ");
    const p = Bun.spawnSync(["script", "-qec", cmd, "/dev/null"], {
      cwd: root,
      env: { ...process.env, CI: "", TERM: "xterm" },
    });
    expect(p.exitCode).toBe(0);
    const screen = p.stdout.toString();
    // the progress line was drawn: otherwise this test would prove nothing
    expect(screen).toContain("ETA");
    // what a person sees: each "\r" returns to the line start, "\x1b[K" erases the rest
    const lines = screen.split(/\r?\n/);
    let json = 0;
    for (const raw of lines) {
      let line = "";
      for (const part of raw.split("\r")) {
        const cleared = part.split("\x1b[K");
        const text = cleared.at(-1)!;
        line = cleared.length > 1 ? text : text + line.slice(text.length);
      }
      if (line.includes('{"event"')) {
        json++;
        expect(line, JSON.stringify(raw)).toStartWith('{"event"');
      }
    }
    expect(json).toBeGreaterThanOrEqual(8);
  });

  test("--quiet leaves only warnings and errors on stderr; --verbose adds debug lines", () => {
    const base = ["cmd/pretrain.ts", "--data", d.data, "--model", d.model, "--max-steps", "1", "--batch-size", "2"];
    const q = sh([...base, "--out", join(dir, "quiet"), "--resume", "auto", "--quiet"]);
    expect(q.code).toBe(0);
    expect(q.err).toBe("");
    const n = sh([...base, "--out", join(dir, "normal"), "--resume", "auto"]);
    expect(n.err).toContain("bunlm: --resume auto:");
    const v = sh([...base, "--out", join(dir, "verbose"), "--verbose"]);
    expect(v.code).toBe(0);
    expect(v.err).toContain("bunlm: debug: bunlm ");
    // the driver's own lines (Dawn's "artificially reduced" warnings on Vulkan) only with --verbose
    expect(sh(["cmd/gpu-info.ts"]).err).toBe("");
  });
});

describe("--resume auto", () => {
  test("starts fresh when --out has no checkpoint, then continues from its latest, as one uninterrupted run", () => {
    const common = [
      "--data",
      d.data,
      "--model",
      d.model,
      "--batch-size",
      "2",
      "--max-lr",
      "3e-3",
      "--seed",
      "3",
      "--ckpt-interval",
      "3",
    ];
    const whole = sh(["cmd/pretrain.ts", ...common, "--out", join(dir, "whole"), "--max-steps", "6"]);
    expect(whole.code).toBe(0);
    const out = join(dir, "auto");
    const first = sh(["cmd/pretrain.ts", ...common, "--out", out, "--max-steps", "6", "--resume", "auto"]);
    expect(first.code).toBe(0);
    expect(first.err).toContain(`--resume auto: ${out} has no \`pretrain\` checkpoint yet; starting a new run`);
    // drop the last checkpoint, as if the run had been killed after step 3
    sh(["-e", `require("node:fs").rmSync(${JSON.stringify(join(out, "step_000006"))}, { recursive: true })`]);
    const again = sh(["cmd/pretrain.ts", ...common, "--out", out, "--max-steps", "6", "--resume", "auto"]);
    expect(again.code).toBe(0);
    expect(again.err).toContain(`--resume auto: continuing ${join(out, "step_000003")}`);
    const steps = (s: string) => events(s).filter((e) => e.event === "step");
    expect(steps(again.out).map((e) => e.step)).toEqual([4, 5, 6]);
    expect(steps(again.out).map((e) => e.loss)).toEqual(
      steps(whole.out)
        .slice(3)
        .map((e) => e.loss),
    );
    expect(
      readFileSync(join(out, "step_000006", "model.safetensors")).equals(
        readFileSync(join(dir, "whole", "step_000006", "model.safetensors")),
      ),
    ).toBe(true);
  });

  test("refuses an --out that holds another command's checkpoints", () => {
    const r = sh(["cmd/sft.ts", "--data", d.data, "--out", join(dir, "whole"), "--resume", "auto", "--model", d.model]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^bunlm: error: --resume auto: .*step_\d+ is a `pretrain` checkpoint; `sft` continues only its own runs\n$/,
    );
    expect(existsSync(join(dir, "whole", "step_000006"))).toBe(true);
  });
});
