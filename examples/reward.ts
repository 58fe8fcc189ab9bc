export function reward(prompt: string, response: string, row: { answer: string }) {
  return response.includes(row.answer) ? 1 : 0;
}
