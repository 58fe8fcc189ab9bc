// The GRPO reward of the example pipeline, and the check examples/accuracy.ts scores the held-out
// questions with: a response is right when its last number is the sum, any other number in it is one
// of the question's operands, and it is in the question's language (Chinese characters in both or in
// neither). "It is 12." and "7 plus 5 is 12." both answer "What is 7 plus 5?"; "It is 12. It is 13.",
// "5 plus 8 is 12." and "等于12。" do not. Text after the answer without a number is not judged: a
// sampled answer that runs on past its sentence is cut at max_new_tokens, and stopping is SFT's lesson.
// reward(prompt, response, row): row is the prompt's other JSONL fields ({"answer": "12"}).

const HAN = /\p{Script=Han}/u;

/** Whether `response` answers the sum asked in `prompt` with `answer`. */
export function isCorrect(prompt: string, response: string, answer: string): boolean {
  const numbers = response.match(/\d+/g) ?? [];
  const operands = prompt.match(/\d+/g) ?? [];
  return (
    answer !== "" &&
    numbers.at(-1) === answer &&
    numbers.slice(0, -1).every((n) => operands.includes(n)) &&
    HAN.test(prompt) === HAN.test(response)
  );
}

// 1 or 0: with groups of 8 samples, a model right about half the time sees both in most groups,
// so the group-normalized advantage has a sign to follow without a shaping term
export function reward(prompt: string, response: string, row: { answer?: unknown }): number {
  return isCorrect(prompt, response, String(row.answer ?? "")) ? 1 : 0;
}
