// Drives an OpenAI-compatible server with the official OpenAI Node.js client and prints one JSON
// line of what it saw. Usage: node client.mjs BASE_URL MODEL
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 30000 });

const models = await client.models.list();
const ids = [];
for await (const m of models) ids.push(m.id);

const chat = await client.chat.completions.create({
  model, max_tokens: 5, messages: [{ role: "user", content: "Say hello" }],
});

const stream = await client.chat.completions.create({
  model, max_tokens: 6, stream: true, stream_options: { include_usage: true },
  messages: [{ role: "user", content: "Count to six" }],
});
let chunks = 0, text = "", usage = null;
for await (const c of stream) {
  if (c.choices.length && c.choices[0].delta.content) { chunks++; text += c.choices[0].delta.content; }
  if (c.usage) usage = c.usage;
}

const completion = await client.completions.create({ model, prompt: "Once", max_tokens: 4 });

let notFound = null;
try {
  await client.completions.create({ model: "no-such-model", prompt: "x", max_tokens: 1 });
} catch (e) {
  notFound = { status: e.status, code: e.code ?? null };
}

console.log(JSON.stringify({
  models: ids,
  chat: { content: chat.choices[0].message.content, completion_tokens: chat.usage.completion_tokens },
  stream: { chunks, text, completion_tokens: usage ? usage.completion_tokens : null },
  completion: { text: completion.choices[0].text, completion_tokens: completion.usage.completion_tokens },
  notFound,
}));
