"""Drives a wsfirst gateway with the official OpenAI Python SDK in WebSocket mode.

Usage: responses_connect.py BASE_URL API_KEY COUNT

Opens one connection with `client.responses.connect()` (which dials `ws://.../responses`) and
creates COUNT responses on it, one after the other (`input` is `turn <n>`). Each response is
read to its terminal event (`response.completed`, `.failed`, `.incomplete`) or to an `error`
event. Prints one JSON object on stdout: for each response, the raw text of every message, the
event types the SDK parsed, the concatenated text deltas, and the final response's id, status
and output text, or the error event's status, code and sequence number.

Needs `openai[realtime]` (the `websockets` package).
"""

import json
import sys

import openai

TERMINAL = ("response.completed", "response.failed", "response.incomplete")


def read_response(connection):
    raw, types, text = [], [], ""
    while True:
        data = connection.recv_bytes()
        event = connection.parse_event(data)
        raw.append(data.decode() if isinstance(data, bytes) else data)
        types.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type in TERMINAL:
            final = {
                "id": event.response.id,
                "status": event.response.status,
                "output_text": event.response.output_text,
            }
            break
        if event.type == "error":
            final = {
                "error_status": event.status,
                "error_code": event.error.code,
                "error_type": event.error.type,
                "sequence_number": event.sequence_number,
            }
            break
    return {"raw": raw, "types": types, "delta_text": text, "final": final}


def main():
    base_url, api_key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    responses = []
    with client.responses.connect() as connection:
        for turn in range(count):
            connection.response.create(model="gpt-kit", input=f"turn {turn}")
            responses.append(read_response(connection))
    print(json.dumps({"responses": responses}))


if __name__ == "__main__":
    main()
