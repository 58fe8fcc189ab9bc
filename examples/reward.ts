// The GRPO reward of the example pipeline: 1 when the response contains the right sum as a number
// (and no other number), 0.2 when it contains the right number among others, else 0.
// reward(prompt, response, row): row is the prompt's other JSONL fields ({"answer": "7"}).
export function reward(_prompt: string, response: string, row: { answer?: string }): number {
  const answer = String(row.answer ?? "");
  const numbers = response.match(/\d+/g) ?? [];
  if (!answer || numbers.length === 0 || !numbers.includes(answer)) return 0;
  return numbers.every((n) => n === answer) ? 1 : 0.2;
}
