"""Drives Keel's gateway with the official `openai` Python package.

Run by `tests/api/gateway_sdk.rs`, which starts Keel (SQLite or PostgreSQL) in front of
keel-sim and passes, through the environment:

  KEEL_BASE_URL      http://127.0.0.1:PORT/v1
  KEEL_API_KEY       a Keel API key (or access token) of a user on the `pro` plan
  KEEL_FREE_KEY      a credential of a user on the `free` plan
  KEEL_MODEL         a route every plan may use
  KEEL_PRO_MODEL     a route of a model class only `pro` is entitled to

Each check prints one line; the script exits 1 at the first failure, with the reason.
The Rust side then checks what was billed.
"""

import json
import os
import sys

import openai
from openai import OpenAI

BASE = os.environ["KEEL_BASE_URL"]
MODEL = os.environ["KEEL_MODEL"]
PRO_MODEL = os.environ["KEEL_PRO_MODEL"]

client = OpenAI(base_url=BASE, api_key=os.environ["KEEL_API_KEY"], max_retries=0, timeout=30)
free = OpenAI(base_url=BASE, api_key=os.environ["KEEL_FREE_KEY"], max_retries=0, timeout=30)
results = {}


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


def expect_error(name, cls, status, code, call):
    try:
        call()
    except cls as e:
        check(name, e.status_code == status and e.code == code,
              f"got {e.status_code} {e.code!r}: {e.body}")
        return e
    except openai.APIStatusError as e:
        check(name, False, f"wrong exception {type(e).__name__} {e.status_code} {e.body}")
    check(name, False, "no error raised")


# ---- models
models = client.models.list()
ids = [m.id for m in models.data]
check("models.list lists the routes the plan may use", MODEL in ids and PRO_MODEL in ids, ids)
free_ids = [m.id for m in free.models.list().data]
check("models.list hides routes the plan may not use", MODEL in free_ids and PRO_MODEL not in free_ids,
      free_ids)

# ---- non-streamed, with headers
messages = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name three colours."}]
raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=50)
completion = raw.parse()
check("non-streamed completion has content", bool(completion.choices[0].message.content))
check("non-streamed completion has usage",
      completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0)
check("x-keel-provider header", bool(raw.headers.get("x-keel-provider")))
check("x-keel-cost-micros header", raw.headers.get("x-keel-cost-micros", "").isdigit(),
      raw.headers.get("x-keel-cost-micros"))
check("x-keel-overhead-ms header", raw.headers.get("x-keel-overhead-ms") is not None)
check("x-request-id header", bool(raw.headers.get("x-request-id")))
results["plain_usage"] = completion.usage.total_tokens

# ---- streamed with include_usage: same prompt, same usage
stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=50,
                                        stream=True, stream_options={"include_usage": True})
text, usage = "", None
for chunk in stream:
    for choice in chunk.choices:
        text += choice.delta.content or ""
    if chunk.usage is not None:
        usage = chunk.usage
check("streamed text equals the non-streamed text", text == completion.choices[0].message.content,
      (text, completion.choices[0].message.content))
check("include_usage yields a usage chunk", usage is not None)
check("streamed usage equals non-streamed usage",
      usage.total_tokens == completion.usage.total_tokens, (usage, completion.usage))

# ---- streamed without include_usage: no usage chunk reaches the client
stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=50, stream=True)
usages = [c.usage for c in stream if c.usage is not None]
check("no usage chunk without include_usage", usages == [], usages)

# ---- max_completion_tokens and user
c = client.chat.completions.create(model=MODEL, messages=messages, max_completion_tokens=3,
                                   user="end-user-42")
check("max_completion_tokens caps the reply", c.usage.completion_tokens <= 3, c.usage)

# ---- tools / function calls, round trip
tools = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
c = client.chat.completions.create(model=MODEL, messages=ask, tools=tools, tool_choice="required")
calls = c.choices[0].message.tool_calls or []
check("a tool call comes back", len(calls) == 1 and calls[0].function.name == "get_weather", calls)
json.loads(calls[0].function.arguments)
follow = ask + [c.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": calls[0].id, "content": "{\"temp_c\": 4}"}]
c = client.chat.completions.create(model=MODEL, messages=follow, tools=tools)
check("the tool result is answered", bool(c.choices[0].message.content))

# ---- streamed tool call
stream = client.chat.completions.create(model=MODEL, messages=ask, tools=tools,
                                        tool_choice="required", stream=True)
names = [tc.function.name for ch in stream for choice in ch.choices
         for tc in (choice.delta.tool_calls or []) if tc.function and tc.function.name]
check("a streamed tool call names its function", names == ["get_weather"], names)

# ---- response_format
c = client.chat.completions.create(model=MODEL, messages=messages,
                                   response_format={"type": "json_object"})
check("response_format is accepted", c.choices[0].finish_reason is not None)

# ---- errors, as the SDK raises them
expect_error("unknown model is model_not_found", openai.NotFoundError, 404, "model_not_found",
             lambda: client.chat.completions.create(model="no-such-model", messages=messages))
expect_error("an unentitled model class is refused", openai.PermissionDeniedError, 403,
             "model_class_not_entitled",
             lambda: free.chat.completions.create(model=PRO_MODEL, messages=messages))
try:
    client.chat.completions.create(model=MODEL, messages=[])
    check("empty messages are refused", False, "no error")
except openai.APIStatusError as e:
    check("empty messages are refused", e.status_code in (400, 422) and bool(e.code), e.body)
try:
    client.chat.completions.create(model=MODEL, messages=messages, max_tokens=-1)
    check("negative max_tokens is refused", False, "no error")
except openai.APIStatusError as e:
    check("negative max_tokens is refused", e.status_code in (400, 422) and bool(e.code), e.body)
try:
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "I want to end my life"}])
    check("crisis language is blocked before any generation", False, "no error")
except openai.PermissionDeniedError as e:
    err = e.body.get("error", e.body) if isinstance(e.body, dict) else {}
    check("crisis language is blocked before any generation",
          e.code == "safety_blocked" and err.get("details", {}).get("status") == "crisis_support",
          e.body)
bad = OpenAI(base_url=BASE, api_key="keel_live_not_a_real_key_at_all_000000000000", max_retries=0)
try:
    bad.chat.completions.create(model=MODEL, messages=messages)
    check("a bad key is refused", False, "no error")
except openai.AuthenticationError as e:
    check("a bad key is refused", e.status_code == 401 and bool(e.code), e.body)

print("RESULTS " + json.dumps(results), flush=True)
