"""An AWS Lambda handler, unchanged, run by Weir's `process` kind through awslambdaric.

For every uploaded object it reads the object with boto3 and writes its size and SHA-256 to
`sums/<key>.json` in the bucket OUT_BUCKET (default `derived`). Called over HTTP it answers with
what it was sent, the process id and how many calls this warm process has served.
"""

import hashlib
import json
import os
import urllib.parse

import boto3

# Created once per process, at init: Weir keeps the process warm between invocations. The
# endpoint and keys come from the environment Weir gives the worker (AWS_ENDPOINT_URL_S3, ...).
s3 = boto3.client("s3")
OUT_BUCKET = os.environ.get("OUT_BUCKET", "derived")
served = 0


def handler(event, context):
    global served
    served += 1
    if "Records" not in event:
        return {"pid": os.getpid(), "served": served, "event": event,
                "request_id": context.aws_request_id}
    done = []
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        summary = {"bucket": bucket, "key": key, "size": len(body),
                   "sha256": hashlib.sha256(body).hexdigest(), "pid": os.getpid()}
        s3.put_object(Bucket=OUT_BUCKET, Key=f"sums/{key}.json",
                      Body=json.dumps(summary).encode(), ContentType="application/json")
        done.append(key)
    return {"processed": done, "pid": os.getpid(), "served": served}
