// Drives a running duet gateway with the official `openai` package, the way any OpenAI
// client would, and checks that what the package gives back is what an OpenAI server
// gives: a streamed answer, a whole one, the model list and the errors the package maps
// to its own classes. Used by tests/test_openai_client.c; also runs by hand:
//
//   OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=KEY node tests/node/openai-check.mjs
//
// Prints one line per check and exits 0 when all pass, 1 at the first mismatch (saying
// what was expected and what came), 2 when it is not set up.
import OpenAI from 'openai';

const baseURL = process.env.OPENAI_BASE_URL;
const apiKey = process.env.OPENAI_API_KEY;
if (!baseURL || !apiKey) {
  console.error('openai-check: set OPENAI_BASE_URL (the gateway, ending in /v1) and OPENAI_API_KEY');
  process.exit(2);
}
const maxTokens = 8;
const ask = {
  model: 'duet',
  messages: [
    { role: 'system', content: 'You tell short stories.' },
    { role: 'user', content: 'Tell me a story about a cat.' },
  ],
  max_tokens: maxTokens,
  temperature: 0,
};

class Mismatch extends Error {}

function check(ok, what, got) {
  if (!ok) {
    throw new Mismatch(`${what}; got ${JSON.stringify(got)}`);
  }
}

function checkUsage(usage, where) {
  check(usage && typeof usage === 'object', `${where}: usage is an object`, usage);
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    check(Number.isInteger(usage[k]) && usage[k] >= 0, `${where}: usage.${k} is a count`, usage);
  }
  check(usage.prompt_tokens > 0, `${where}: the prompt has tokens`, usage);
  check(usage.completion_tokens > 0 && usage.completion_tokens <= maxTokens,
        `${where}: 1..${maxTokens} completion tokens`, usage);
  check(usage.total_tokens === usage.prompt_tokens + usage.completion_tokens,
        `${where}: total_tokens = prompt_tokens + completion_tokens`, usage);
}

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

async function streamed() {
  const stream = await client.chat.completions.create({
    ...ask,
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }
  check(chunks.length >= 3, 'stream: at least a role chunk, a token and a finish', chunks);
  const first = chunks[0];
  for (const c of chunks) {
    check(c.object === 'chat.completion.chunk', 'stream: every chunk is chat.completion.chunk', c);
    check(c.id === first.id && typeof c.id === 'string' && c.id.length > 0,
          'stream: every chunk has the first chunk\'s id', c);
    check(c.model === first.model, 'stream: every chunk names the same model', c);
    check(Number.isInteger(c.created), 'stream: created is a number', c);
  }
  check(first.choices.length === 1 && first.choices[0].delta.role === 'assistant',
        'stream: the first chunk has delta.role "assistant"', first);
  const last = chunks[chunks.length - 1];
  check(Array.isArray(last.choices) && last.choices.length === 0,
        'stream: with include_usage the last chunk has empty choices', last);
  checkUsage(last.usage, 'stream');
  const answer = chunks.slice(0, -1);
  for (const c of answer) {
    check(c.usage === null || c.usage === undefined, 'stream: usage only in the last chunk', c);
    check(c.choices.length === 1 && c.choices[0].index === 0, 'stream: one choice, index 0', c);
  }
  const finishes = answer.filter((c) => c.choices[0].finish_reason != null);
  check(finishes.length === 1 && finishes[0] === answer[answer.length - 1],
        'stream: exactly one finish_reason, in the last choice chunk', answer);
  const reason = finishes[0].choices[0].finish_reason;
  check(reason === 'length' || reason === 'stop', 'stream: finish_reason length or stop', reason);
  if (reason === 'length') {
    check(last.usage.completion_tokens === maxTokens, 'stream: cut at max_tokens', last.usage);
  }
  const text = answer.map((c) => c.choices[0].delta.content ?? '').join('');
  const tokenChunks = answer.filter((c) => (c.choices[0].delta.content ?? '') !== '');
  check(text.length > 0, 'stream: the deltas make a non-empty answer', text);
  check(tokenChunks.length >= 2, 'stream: the answer comes in several deltas', tokenChunks.length);
  console.log(`ok - streamed: ${chunks.length} chunks, ${tokenChunks.length} deltas, ` +
              `finish ${reason}, usage ${JSON.stringify(last.usage)}: ${JSON.stringify(text)}`);
  return { text, model: first.model };
}

// Without stream_options.include_usage there is no usage chunk: the stream ends with the
// finish_reason chunk, as OpenAI's does.
async function streamedWithoutUsage() {
  const stream = await client.chat.completions.create({ ...ask, stream: true });
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }
  const last = chunks[chunks.length - 1];
  check(chunks.every((c) => c.choices.length === 1 && c.usage == null),
        'stream without include_usage: one choice in every chunk, no usage', chunks);
  check(last.choices[0].finish_reason === 'length' || last.choices[0].finish_reason === 'stop',
        'stream without include_usage: the last chunk has the finish_reason', last);
  console.log(`ok - streamed without include_usage: ${chunks.length} chunks, no usage chunk`);
}

async function whole() {
  const c = await client.chat.completions.create(ask);
  check(c.object === 'chat.completion', 'whole: object is chat.completion', c);
  check(typeof c.id === 'string' && c.id.length > 0, 'whole: an id', c);
  check(c.choices.length === 1 && c.choices[0].index === 0, 'whole: one choice, index 0', c);
  const choice = c.choices[0];
  check(choice.message.role === 'assistant', 'whole: the message is the assistant\'s', choice);
  check(typeof choice.message.content === 'string' && choice.message.content.length > 0,
        'whole: content is a non-empty string', choice);
  check(choice.finish_reason === 'length' || choice.finish_reason === 'stop',
        'whole: finish_reason length or stop', choice);
  checkUsage(c.usage, 'whole');
  if (choice.finish_reason === 'length') {
    check(c.usage.completion_tokens === maxTokens, 'whole: cut at max_tokens', c.usage);
  }
  console.log(`ok - whole: finish ${choice.finish_reason}, usage ${JSON.stringify(c.usage)}: ` +
              `${JSON.stringify(choice.message.content)}`);
  return { text: choice.message.content, model: c.model };
}

// The package's own stream helper rebuilds a completion from the chunks and is strict
// about their order (a content delta before the role, two choices, ...).
async function helper() {
  const runner = client.chat.completions.stream({ ...ask, stream_options: { include_usage: true } });
  const final = await runner.finalChatCompletion();
  check(final.choices.length === 1 && final.choices[0].message.role === 'assistant',
        'stream helper: one assistant message', final);
  checkUsage(final.usage, 'stream helper');
  console.log(`ok - stream helper: ${JSON.stringify(final.choices[0].message.content)}`);
  return final.choices[0].message.content;
}

// A client that stops reading mid-answer (the package's abort) leaves the gateway able to
// answer the next request.
async function aborted() {
  const stream = await client.chat.completions.create({ ...ask, max_tokens: 64, stream: true });
  let seen = 0;
  for await (const chunk of stream) {
    if ((chunk.choices[0]?.delta?.content ?? '') !== '' && ++seen === 2) {
      stream.controller.abort();
      break;
    }
  }
  check(seen === 2, 'abort: two deltas came before the abort', seen);
  const after = await client.chat.completions.create({ ...ask, max_tokens: 2 });
  check(after.choices[0].message.content.length > 0, 'abort: the next request is answered', after);
  console.log('ok - aborted stream: the next request is answered');
}

async function models(served) {
  const ids = [];
  for await (const m of client.models.list()) {
    check(m.object === 'model' && typeof m.id === 'string', 'models: each entry is a model', m);
    ids.push(m.id);
  }
  check(ids.includes(served), `models: the list has the served model "${served}"`, ids);
  const one = await client.models.list();
  check(one.data.length === ids.length, 'models: one page holds them all', one.data);
  console.log(`ok - models: ${JSON.stringify(ids)}`);
}

async function expectError(what, cls, status, call, more) {
  let err = null;
  try {
    await call();
  } catch (e) {
    err = e;
  }
  check(err !== null, `${what}: the call fails`, 'a success');
  check(err instanceof cls, `${what}: the package raises ${cls.name}`,
        `${err.constructor.name}: ${err.message}`);
  check(err.status === status, `${what}: HTTP ${status}`, err.status);
  check(typeof err.error?.message === 'string' && err.error.message.length > 0,
        `${what}: the body is an OpenAI error with a message`, err.error);
  if (more) {
    more(err);
  }
  console.log(`ok - ${what}: ${cls.name} ${err.status}: ${err.error.message}`);
}

async function errors() {
  const stranger = new OpenAI({ baseURL, apiKey: `${apiKey}-wrong`, maxRetries: 0 });
  await expectError('wrong key', OpenAI.AuthenticationError, 401,
                    () => stranger.chat.completions.create(ask));
  await expectError('wrong key, models', OpenAI.AuthenticationError, 401,
                    () => stranger.models.list());
  await expectError('wrong key, stream', OpenAI.AuthenticationError, 401,
                    () => stranger.chat.completions.create({ ...ask, stream: true }));
  await expectError('temperature 5', OpenAI.BadRequestError, 400,
                    () => client.chat.completions.create({ ...ask, temperature: 5 }),
                    (e) => {
                      check(e.param === 'temperature', 'temperature 5: param names the field', e.error);
                      check(e.type === 'invalid_request_error',
                            'temperature 5: type invalid_request_error', e.error);
                    });
  await expectError('no messages', OpenAI.BadRequestError, 400,
                    () => client.chat.completions.create({ ...ask, messages: [] }));
}

try {
  const s = await streamed();
  await streamedWithoutUsage();
  const w = await whole();
  check(w.text === s.text, 'greedy (temperature 0): the whole answer equals the streamed one',
        { whole: w.text, streamed: s.text });
  check(w.model === s.model, 'whole and streamed name the same model', { whole: w.model, streamed: s.model });
  const h = await helper();
  check(h === s.text, 'greedy: the stream helper\'s answer equals the streamed one', { helper: h, streamed: s.text });
  await models(s.model);
  await aborted();
  await errors();
  console.log('openai-check: all checks passed');
} catch (e) {
  if (e instanceof Mismatch) {
    console.error(`openai-check: FAILED: ${e.message}`);
  } else {
    console.error(`openai-check: FAILED with ${e.constructor.name}: ${e.message}`);
    if (e.status !== undefined) {
      console.error(`  HTTP ${e.status}: ${JSON.stringify(e.error)}`);
    }
  }
  process.exit(1);
}
