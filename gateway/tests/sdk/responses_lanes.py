"""Drives a wsfirst gateway with the official OpenAI Python SDK's lanes.

Usage: responses_lanes.py BASE_URL API_KEY TURNS STORE

Opens one connection with `client.responses.connect()` and a `ResponsesWebSocketSession`
(`openai.lib.responses_websocket`) with three lanes (`stream_id` "alpha", "beta", "gamma").
Each turn sends one `response.create` on every lane before reading any answer (the lanes run at
once), each continuing its lane's previous response (`previous_response_id`, `store` STORE:
"true" or "false"), then collects every lane's final response with `get_final_response()`.
Prints one JSON object on stdout: per lane, each turn's response id, status and output text,
the lane the SDK routed its final response on, or the error event's status and code.

Needs `openai[realtime]` (the `websockets` package).
"""

import json
import sys

import openai
from openai.lib.responses_websocket import (
    ResponsesWebSocketError,
    ResponsesWebSocketLimits,
    ResponsesWebSocketSession,
)

LANES = ("alpha", "beta", "gamma")


def main():
    base_url, api_key = sys.argv[1], sys.argv[2]
    turns, store = int(sys.argv[3]), sys.argv[4] == "true"
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    limits = ResponsesWebSocketLimits(
        max_lanes=8,
        max_events_per_lane=1024,
        max_events=4096,
        max_bytes_per_lane=16 << 20,
        max_bytes=64 << 20,
    )
    report = {lane: [] for lane in LANES}
    previous = {lane: None for lane in LANES}
    with client.responses.connect() as connection:
        with ResponsesWebSocketSession(connection, limits=limits) as session:
            lanes = {name: session.lane(name) for name in LANES}
            for turn in range(turns):
                for name, lane in lanes.items():
                    create = {
                        "type": "response.create",
                        "model": "gpt-kit",
                        "input": f"{name} turn {turn}",
                        "store": store,
                    }
                    if previous[name] is not None:
                        create["previous_response_id"] = previous[name]
                    lane.send(create)
                for name, lane in lanes.items():
                    try:
                        final = lane.get_final_response(timeout=30)
                        previous[name] = final.id
                        report[name].append(
                            {
                                "id": final.id,
                                "status": final.status,
                                "output_text": final.output_text,
                            }
                        )
                    except ResponsesWebSocketError as error:
                        event = error.event
                        previous[name] = None
                        report[name].append(
                            {
                                "error_status": event.status,
                                "error_code": event.error.code,
                                "stream_id": getattr(event, "stream_id", None),
                            }
                        )
    print(json.dumps({"lanes": report}))


if __name__ == "__main__":
    main()
