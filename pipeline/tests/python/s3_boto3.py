"""boto3 (and s3transfer, as `aws s3 cp` uses it) against Weir's built-in S3 endpoint.

Run by pipeline/tests/boto3_client.rs with WEIR_S3 (endpoint URL), WEIR_S3_KEY, WEIR_S3_SECRET
and WEIR_PHOTO (a JPEG to upload to the `uploads` bucket). Each check prints `ok <name>`; the
first failure raises and the exit status is not zero.
"""

import base64
import hashlib
import io
import os
import time
import urllib.error
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["WEIR_S3"],
    aws_access_key_id=os.environ["WEIR_S3_KEY"],
    aws_secret_access_key=os.environ["WEIR_S3_SECRET"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
B = "boto"
MIB = 1024 * 1024


def fails(code, status, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ClientError as e:
        got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
        assert got == (code, status), f"{call.__name__}: {got} != {(code, status)}"
        return e
    raise AssertionError(f"{call.__name__} did not fail with {code}")


def body(key, bucket=B, **kwargs):
    return s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()


def ok(name):
    print("ok", name, flush=True)


s3.create_bucket(Bucket=B)

# Keys of any length S3 allows, stored and listed back byte-exact; one byte more is refused.
long_key = "k/" + "é" * 511
assert len(long_key.encode()) == 1024
s3.put_object(Bucket=B, Key=long_key, Body=b"long")
listed = [o["Key"] for o in s3.list_objects_v2(Bucket=B, Prefix="k/")["Contents"]]
assert listed == [long_key], listed
assert body(long_key) == b"long"
fails("KeyTooLongError", 400, s3.put_object, Bucket=B, Key=long_key + "x", Body=b"x")
ok("keys up to 1024 bytes")

# Keys that are prefixes of other keys.
for k in ["a", "a/b", "photos/", "photos/x.jpg"]:
    s3.put_object(Bucket=B, Key=k, Body=k.encode())
for k in ["a", "a/b", "photos/", "photos/x.jpg"]:
    assert body(k) == k.encode(), k
fails("NoSuchKey", 404, s3.get_object, Bucket=B, Key="photos")
ok("prefix keys")

# A refused body leaves the stored object as it was.
s3.put_object(Bucket=B, Key="digest", Body=b"old")
old_md5 = base64.b64encode(hashlib.md5(b"old").digest()).decode()
fails("BadDigest", 400, s3.put_object, Bucket=B, Key="digest", Body=b"new", ContentMD5=old_md5)
assert body("digest") == b"old"
ok("bad digest keeps the object")

# Multipart as S3 runs it: gaps allowed, order and ETags checked, a refused complete can be
# retried, and an aborted upload is gone.
up = s3.create_multipart_upload(Bucket=B, Key="mp")["UploadId"]
p1 = s3.upload_part(Bucket=B, Key="mp", UploadId=up, PartNumber=1, Body=b"1" * (5 * MIB))
p3 = s3.upload_part(Bucket=B, Key="mp", UploadId=up, PartNumber=3, Body=b"3" * 100)
parts = [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 3, "ETag": p3["ETag"]}]
fails("InvalidPartOrder", 400, s3.complete_multipart_upload, Bucket=B, Key="mp", UploadId=up,
      MultipartUpload={"Parts": parts[::-1]})
wrong = [parts[0], {"PartNumber": 3, "ETag": '"' + "0" * 32 + '"'}]
fails("InvalidPart", 400, s3.complete_multipart_upload, Bucket=B, Key="mp", UploadId=up,
      MultipartUpload={"Parts": wrong})
fails("NoSuchUpload", 404, s3.complete_multipart_upload, Bucket=B, Key="other", UploadId=up,
      MultipartUpload={"Parts": parts})
listed = s3.list_parts(Bucket=B, Key="mp", UploadId=up)["Parts"]
assert [p["PartNumber"] for p in listed] == [1, 3], listed
s3.complete_multipart_upload(Bucket=B, Key="mp", UploadId=up, MultipartUpload={"Parts": parts})
assert body("mp") == b"1" * (5 * MIB) + b"3" * 100
assert body("mp", PartNumber=2) == b"3" * 100
up = s3.create_multipart_upload(Bucket=B, Key="gone")["UploadId"]
s3.abort_multipart_upload(Bucket=B, Key="gone", UploadId=up)
fails("NoSuchUpload", 404, s3.complete_multipart_upload, Bucket=B, Key="gone", UploadId=up,
      MultipartUpload={"Parts": parts})
ok("multipart")

# s3transfer, as `aws s3 cp` runs it: a 12 MiB file in concurrent 5 MiB parts, then a ranged
# concurrent download.
data = os.urandom(12 * MIB)
cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4)
s3.upload_fileobj(io.BytesIO(data), B, "big.bin", Config=cfg)
head = s3.head_object(Bucket=B, Key="big.bin")
assert head["ContentLength"] == len(data) and head["ETag"].endswith('-3"'), head
out = io.BytesIO()
s3.download_fileobj(B, "big.bin", out, Config=cfg)
assert out.getvalue() == data
ok("s3transfer upload and download")

# Listings page by page with a delimiter, V1 and V2, as the paginators drive them.
for k in ["l/1", "l/2", "l/d/x", "l/d/y", "l/e/x", "l/3"]:
    s3.put_object(Bucket=B, Key=k, Body=b"x")
for op in ["list_objects_v2", "list_objects"]:
    seen = []
    pages = s3.get_paginator(op).paginate(
        Bucket=B, Prefix="l/", Delimiter="/", PaginationConfig={"PageSize": 2})
    for page in pages:
        seen += [o["Key"] for o in page.get("Contents", [])]
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert sorted(seen) == ["l/1", "l/2", "l/3", "l/d/", "l/e/"], (op, seen)
ok("paginated listings")

# Conditional and ranged GETs.
etag = s3.head_object(Bucket=B, Key="digest")["ETag"]
fails("304", 304, s3.get_object, Bucket=B, Key="digest", IfNoneMatch=etag)
fails("PreconditionFailed", 412, s3.get_object, Bucket=B, Key="digest", IfMatch='"nope"')
assert body("digest", Range="bytes=1-") == b"ld"
ok("conditional and ranged gets")

# Presigned URLs work, and stop working when they expire.
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "digest"}, ExpiresIn=60)
assert urllib.request.urlopen(url).read() == b"old"
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "digest"}, ExpiresIn=1)
time.sleep(2.5)
try:
    urllib.request.urlopen(url)
    raise AssertionError("an expired URL was served")
except urllib.error.HTTPError as e:
    assert e.code == 403 and b"AccessDenied" in e.read(), e.code
ok("presigned urls")

# What cleanup tools call: versions of an unversioned bucket, batch deletes, and a bucket that
# still holds objects cannot go.
versions = s3.list_object_versions(Bucket=B, Prefix="l/")["Versions"]
assert {v["VersionId"] for v in versions} == {"null"} and len(versions) == 6, versions
fails("BucketNotEmpty", 409, s3.delete_bucket, Bucket=B)
gone = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "l/1"}, {"Key": "l/2"}]})
assert sorted(d["Key"] for d in gone["Deleted"]) == ["l/1", "l/2"], gone
ok("versions, batch delete, non-empty bucket")

# An error names its request id in the body and the header alike.
e = fails("NoSuchKey", 404, s3.get_object, Bucket=B, Key="missing")
meta = e.response["ResponseMetadata"]
assert meta["RequestId"] and meta["RequestId"] == meta["HTTPHeaders"]["x-amz-request-id"], meta
ok("request ids")

# An upload that triggers a function.
with open(os.environ["WEIR_PHOTO"], "rb") as f:
    s3.put_object(Bucket="uploads", Key="from boto3/photo é.jpg", Body=f.read())
ok("uploaded a photo")
