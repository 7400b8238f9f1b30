"""Drives a wsfirst gateway with the official OpenAI Python SDK (the `openai` package).

Usage: responses_client.py BASE_URL API_KEY

Sends, one after the other, a streaming Responses API request
(`client.responses.create(..., stream=True)`) and a non-streaming one, and prints one JSON
object on stdout with what the SDK received: for the stream, every event's type, the text of
the `response.output_text.delta` events joined, the final response's `output_text` and id; for
the non-streaming call, `output_text`, id and status; for both, the `x-wsfirst-transport` and
`x-wsfirst-reason` response headers. The Rust test (gateway/tests/openai_sdk.rs) compares it with the
answer the scripted upstream served. Retries are off so that every request reaches the
gateway exactly once and a failure is reported, not hidden. Exits with status 1 (and the error
on stderr) if the SDK raises.
"""

import json
import sys

import openai


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, api_key = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30.0)
    report = {"sdk_version": openai.__version__}

    # Streaming: the SDK parses the server-sent events into typed events.
    raw = client.responses.with_raw_response.create(
        model="gpt-kit", input="Say hello", stream=True
    )
    events = []
    deltas = []
    final = None
    for event in raw.parse():
        events.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        if event.type in ("response.completed", "response.failed", "response.incomplete"):
            final = event.response
    report["stream"] = {
        "transport": raw.headers.get("x-wsfirst-transport"),
        "reason": raw.headers.get("x-wsfirst-reason"),
        "content_type": raw.headers.get("content-type"),
        "event_types": events,
        "delta_text": "".join(deltas),
        "final_output_text": final.output_text if final is not None else None,
        "final_id": final.id if final is not None else None,
        "final_status": final.status if final is not None else None,
    }

    # Non-streaming: the SDK parses the final response JSON.
    raw = client.responses.with_raw_response.create(model="gpt-kit", input="Say hello")
    response = raw.parse()
    report["non_stream"] = {
        "transport": raw.headers.get("x-wsfirst-transport"),
        "reason": raw.headers.get("x-wsfirst-reason"),
        "content_type": raw.headers.get("content-type"),
        "output_text": response.output_text,
        "id": response.id,
        "status": response.status,
    }

    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except openai.OpenAIError as error:
        print(f"openai sdk error: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
