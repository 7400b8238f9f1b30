"""Drives a wsfirst gateway with the official OpenAI Python SDK through the Responses API's own signals.

Usage: responses_signals.py BASE_URL API_KEY MODE

MODE is one of:
- `client_error`: one streaming and one non-streaming request that the upstream rejects; reports,
  for each, the exception class the SDK raised, its status code and the error code in its body;
- `background`: one non-streaming request with `background=True`; reports the transport and
  reason headers and the response's output text;
- `conversations`: 8 concurrent conversations of 4 turns each with `store=False`, each turn
  continuing the previous one with `previous_response_id`; reports how many turns succeeded and
  the errors of those that did not.

Prints one JSON object on stdout. Retries are off, so each call reaches the gateway exactly once.
"""

import concurrent.futures
import json
import sys

import openai


def client_error(client):
    report = {}
    for name, stream in (("stream", True), ("non_stream", False)):
        try:
            response = client.responses.create(model="gpt-kit", input="Say hello", stream=stream)
            if stream:
                for _ in response:
                    pass
            report[name] = {"raised": None}
        except openai.APIStatusError as error:
            body = error.body if isinstance(error.body, dict) else {}
            report[name] = {
                "raised": type(error).__name__,
                "status": error.status_code,
                "code": body.get("code") if "code" in body else (body.get("error") or {}).get("code"),
            }
    return report


def background(client):
    raw = client.responses.with_raw_response.create(
        model="gpt-kit", input="Say hello", background=True
    )
    response = raw.parse()
    return {
        "transport": raw.headers.get("x-wsfirst-transport"),
        "reason": raw.headers.get("x-wsfirst-reason"),
        "output_text": response.output_text,
    }


def conversation(client, index):
    previous = None
    errors = []
    done = 0
    for turn in range(4):
        try:
            response = client.responses.create(
                model="gpt-kit",
                input=f"conversation {index}, turn {turn}",
                store=False,
                previous_response_id=previous,
            )
            previous = response.id
            done += 1
        except openai.APIStatusError as error:
            errors.append(f"{error.status_code} {error.message}")
            break
    return done, errors


def conversations(client):
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda index: conversation(client, index), range(8)))
    return {
        "turns_ok": sum(done for done, _ in results),
        "errors": [error for _, errors in results for error in errors],
    }


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, api_key, mode = sys.argv[1:]
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30.0)
    modes = {"client_error": client_error, "background": background, "conversations": conversations}
    report = modes[mode](client)
    report["sdk_version"] = openai.__version__
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except openai.OpenAIError as error:
        print(f"openai sdk error: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
