"""Lambda handlers that misbehave on purpose, for pipeline/tests/process_python.rs."""

import os
import sys
import time
import urllib.parse

# Set once, at init: a warm process keeps it.
STARTED_PID = os.getpid()
calls = 0


def keys(event):
    return [urllib.parse.unquote_plus(r["s3"]["object"]["key"]) for r in event["Records"]]


def picky(event, context):
    """Fails (raises) when any record's key has `bad` in it; else reports what it saw."""
    for key in keys(event):
        if "bad" in key:
            raise ValueError(f"cannot take {key}")
    return {"keys": keys(event), "records": len(event["Records"])}


def reporting(event, context):
    """Reports records whose key has `bad` in it through batchItemFailures, without raising."""
    failed = [{"itemIdentifier": r["eventID"]} for r in event["Records"]
              if "bad" in r["s3"]["object"]["key"]]
    return {"batchItemFailures": failed}


def whoami(event, context):
    """Which process served the call, and how many calls it has served (global state)."""
    global calls
    calls += 1
    return {"pid": os.getpid(), "init_pid": STARTED_PID, "calls": calls,
            "deadline_left_ms": context.get_remaining_time_in_millis(),
            "function": context.function_name, "arn": context.invoked_function_arn,
            "runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"],
            "env": sorted(k for k in os.environ if not k.startswith("LC_"))}


def sleepy(event, context):
    """Sleeps as long as the event says; says which process it is."""
    time.sleep(float(event.get("sleep", 0)))
    return {"pid": os.getpid()}


def exits(event, context):
    """Exits the process mid-invocation when asked to."""
    if event.get("exit"):
        print("exiting on purpose", file=sys.stderr, flush=True)
        os._exit(3)
    return {"pid": os.getpid()}


def shaped(event, context):
    """Answers an HTTP call as API Gateway expects: status, headers, a base64 body."""
    import base64
    body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else b""
    return {"statusCode": 201, "headers": {"content-type": "application/octet-stream",
                                           "x-path": event.get("rawPath", "")},
            "body": base64.b64encode(body[::-1]).decode(), "isBase64Encoded": True}


def scheduled(event, context):
    """Answers with the event it was handed (a cron trigger's EventBridge-shaped event)."""
    return event
