// bun examples/show_samples.ts RUN_DIR samples.jsonl
// Samples from the example pipeline's models, before and after training: "pretrain" prompts continue
// raw text (untrained vs pretrained), "chat" prompts go through the chat template (untrained vs sft vs
// dpo vs grpo). Answers (chat, and rows with "greedy": true) are greedy, text is sampled with a fixed
// seed. One JSON line per sample on stdout; a readable listing on stderr.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu } from "../lib/gpu/index.ts";
import { loadModel } from "../lib/model/checkpoint.ts";
import { generate } from "../lib/model/generate.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { renderChat, CHATML_TEMPLATE } from "../lib/tokenizer/chat_template.ts";

const [run, file] = [process.argv[2]!, process.argv[3]!];
await initGpu();
const tok = Tokenizer.fromDir(join(run, "tok"));
const models = Object.fromEntries(
  ["untrained", "pt", "sft-run", "dpo-run", "grpo-run"].map((m) => [m, loadModel(join(run, m, "latest"))]),
);
const stop = [tok.specialId("<|endoftext|>"), tok.specialId("<|im_end|>")];
for (const line of readFileSync(file, "utf8").split("\n").filter(Boolean)) {
  const { prompt, stage, greedy } = JSON.parse(line);
  const chat = stage === "chat";
  const text = chat
    ? renderChat(tok.config.chat_template ?? CHATML_TEMPLATE, [{ role: "user", content: prompt }], true)
    : prompt;
  console.error(`\n${chat ? "chat" : "text"}: ${prompt}`);
  for (const name of chat ? ["untrained", "sft-run", "dpo-run", "grpo-run"] : ["untrained", "pt"]) {
    const { config, params } = models[name]!;
    // answers greedy; text sampled (temperature 0.8, top-k 40), since tiny models loop when greedy
    const g = await generate(
      config,
      params,
      tok.encode(text),
      chat || greedy
        ? { maxNewTokens: 16, temperature: 0, topK: 0, topP: 1, seed: 0, stop }
        : { maxNewTokens: 40, temperature: 0.8, topK: 40, topP: 1, seed: 1, stop },
    );
    const out = tok.decode(
      g.ids.filter((i) => !stop.includes(i)),
      true,
    );
    console.error(`  ${name.padEnd(9)} ${JSON.stringify(out)}`);
    console.log(JSON.stringify({ prompt, stage, model: name, text: out }));
  }
}
process.exit(0);
