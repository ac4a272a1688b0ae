"""boto3 (a client no one here wrote) against the emulator's R2 S3-compatible API.

boto3 is configured as Cloudflare's R2 docs show (docs repo `r2/examples/aws/boto3.mdx`): the
endpoint, Access Key ID = the API token's id, Secret Access Key = sha256(token value).hexdigest(),
region "auto", SigV4, path-style addressing; checksums "when_required" (docs/cloudflare-api.md §7
"Checksums"). Buckets are created through the REST API, so every test also checks that both APIs
see one bucket.
"""

import hashlib
import io
import os
import re
import urllib.error
import urllib.request

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MIB = 1024 * 1024
R2_WRITE = "Workers R2 Storage Write"
R2_READ = "Workers R2 Storage Read"
ACCOUNT_SCOPE = "com.cloudflare.api.account"


def r2_config(**extra):
    options = dict(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 1},
    )
    options.update(extra)
    return Config(**options)


def s3_client(emu, token_id, token_value, config=None, secret=None):
    return boto3.client(
        "s3",
        endpoint_url=emu["R2_S3_ENDPOINT"],
        aws_access_key_id=token_id,
        aws_secret_access_key=secret or hashlib.sha256(token_value.encode()).hexdigest(),
        region_name="auto",
        config=config or r2_config(),
    )


def account_policy(emu, *groups):
    return [
        {
            "effect": "allow",
            "resources": {f"com.cloudflare.api.account.{emu['CLOUDFLARE_ACCOUNT_ID']}": "*"},
            "permission_groups": [{"id": emu.permission_group(g, ACCOUNT_SCOPE)} for g in groups],
        }
    ]


@pytest.fixture(scope="module")
def bucket(emu):
    status, body = emu.api(
        "POST", f"/accounts/{emu['CLOUDFLARE_ACCOUNT_ID']}/r2/buckets", {"name": "boto-sites"}
    )
    assert status == 200, body
    return "boto-sites"


@pytest.fixture(scope="module")
def writer(emu):
    token_id, value = emu.mint_token("boto3 writer", account_policy(emu, R2_WRITE))
    return token_id, value


@pytest.fixture(scope="module")
def s3(emu, writer):
    return s3_client(emu, *writer)


def error_code(exc):
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def test_the_emulator_prints_the_s3_endpoint(emu):
    assert emu["R2_S3_ENDPOINT"] == emu.origin


def test_put_head_get_range_and_rest_sees_it(emu, s3, bucket):
    body = b"<h1>hello from boto3</h1>" * 10
    put = s3.put_object(
        Bucket=bucket,
        Key="site/index.html",
        Body=body,
        ContentType="text/html",
        CacheControl="public, max-age=60",
    )
    assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()

    head = s3.head_object(Bucket=bucket, Key="site/index.html")
    assert head["ContentLength"] == len(body)
    assert head["ContentType"] == "text/html"
    assert head["CacheControl"] == "public, max-age=60"
    assert head["ETag"] == put["ETag"]
    assert head["AcceptRanges"] == "bytes"

    got = s3.get_object(Bucket=bucket, Key="site/index.html")
    assert got["Body"].read() == body

    part = s3.get_object(Bucket=bucket, Key="site/index.html", Range="bytes=4-8")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 4-8/{len(body)}"
    assert part["Body"].read() == body[4:9]

    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="site/index.html", Range=f"bytes={len(body)}-")
    assert error_code(e.value) == ("InvalidRange", 416)

    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="site/missing.html")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="site/missing.html")
    assert error_code(e.value) == ("NoSuchKey", 404)

    # The REST API sees the same object, with the same ETag (unquoted in its listing).
    status, listing = emu.api(
        "GET", f"/accounts/{emu['CLOUDFLARE_ACCOUNT_ID']}/r2/buckets/{bucket}/objects?prefix=site/"
    )
    assert status == 200, listing
    item = next(i for i in listing["result"] if i["key"] == "site/index.html")
    assert item["etag"] == hashlib.md5(body).hexdigest()
    assert item["size"] == len(body)


def test_an_object_written_over_rest_reads_over_s3(emu, s3, bucket):
    token_id, value = emu.mint_token("rest writer", account_policy(emu, R2_WRITE))
    url = f"{emu.base_url}/accounts/{emu['CLOUDFLARE_ACCOUNT_ID']}/r2/buckets/{bucket}/objects/rest/a.txt"
    req = urllib.request.Request(
        url,
        data=b"written over REST",
        method="PUT",
        headers={"Authorization": "Bearer " + value, "Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    got = s3.get_object(Bucket=bucket, Key="rest/a.txt")
    assert got["Body"].read() == b"written over REST"
    assert got["ContentType"] == "text/plain"
    assert got["ETag"] == '"%s"' % hashlib.md5(b"written over REST").hexdigest()


def test_list_with_the_paginator_over_more_than_1000_keys(s3, bucket):
    keys = [f"many/{i:05d}.txt" for i in range(1203)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    s3.put_object(Bucket=bucket, Key="many/sub/deeper.txt", Body=b"y")
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="many/", PaginationConfig={"PageSize": 500}
        )
    )
    assert len(pages) == 3
    listed = [o["Key"] for p in pages for o in p.get("Contents", [])]
    assert listed == sorted(keys + ["many/sub/deeper.txt"])
    assert all(o["Size"] == 1 and o["StorageClass"] == "STANDARD" for p in pages for o in p["Contents"])

    # Default page size is 1000, and a delimiter groups "many/sub/".
    first = s3.list_objects_v2(Bucket=bucket, Prefix="many/", Delimiter="/")
    assert first["KeyCount"] == 1000 and first["IsTruncated"]
    rest = s3.list_objects_v2(
        Bucket=bucket, Prefix="many/", Delimiter="/", ContinuationToken=first["NextContinuationToken"]
    )
    assert not rest["IsTruncated"]
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["many/sub/"]
    assert len(first["Contents"]) + len(rest["Contents"]) == 1203

    after = s3.list_objects_v2(Bucket=bucket, Prefix="many/", StartAfter="many/01200.txt")
    assert [o["Key"] for o in after["Contents"]] == [
        "many/01201.txt",
        "many/01202.txt",
        "many/sub/deeper.txt",
    ]


def test_keys_with_spaces_and_unicode_round_trip(s3, bucket):
    key = "odd keys/a b+c&d=é ✓.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"odd")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"odd"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="odd keys/")
    assert [o["Key"] for o in listed["Contents"]] == [key]


def test_keys_with_sub_delimiters_round_trip(s3, bucket):
    """boto3 percent-encodes these in the path and signs the encoded form, the SigV4 canonical URI
    (URI-encode of the decoded path). The emulator re-canonicalises the path rather than trusting
    the wire form, as R2 does (openclaw/clawhub PR #2723: a raw `!` got SignatureDoesNotMatch)."""
    keys = [f"sub/{c}name{c}.txt" for c in "!'()*+=@:"] + ["sub/all !'()*+=@:.txt"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
        s3.head_object(Bucket=bucket, Key=key)
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
        )
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.read() == key.encode()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="sub/")
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(keys)
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert s3.list_objects_v2(Bucket=bucket, Prefix="sub/")["KeyCount"] == 0


def test_multipart_5_mib_plus_one_byte_round_trips(s3, bucket):
    data = os.urandom(5 * MIB + 1)
    up = s3.create_multipart_upload(Bucket=bucket, Key="big/file.bin", ContentType="application/x-test")
    uid = up["UploadId"]
    p1 = s3.upload_part(Bucket=bucket, Key="big/file.bin", UploadId=uid, PartNumber=1, Body=data[: 5 * MIB])
    p2 = s3.upload_part(Bucket=bucket, Key="big/file.bin", UploadId=uid, PartNumber=2, Body=data[5 * MIB :])
    parts = s3.list_parts(Bucket=bucket, Key="big/file.bin", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MIB), (2, 1)]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big/file.bin",
        UploadId=uid,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": p1["ETag"]},
                {"PartNumber": 2, "ETag": p2["ETag"]},
            ]
        },
    )
    md5s = hashlib.md5(data[: 5 * MIB]).digest() + hashlib.md5(data[5 * MIB :]).digest()
    assert done["ETag"] == '"%s-2"' % hashlib.md5(md5s).hexdigest()
    got = s3.get_object(Bucket=bucket, Key="big/file.bin")
    assert got["ContentType"] == "application/x-test"
    assert got["Body"].read() == data


def test_multipart_rules_and_abort(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="big/small.bin")["UploadId"]
    p1 = s3.upload_part(Bucket=bucket, Key="big/small.bin", UploadId=uid, PartNumber=1, Body=b"a" * 1024)
    p2 = s3.upload_part(Bucket=bucket, Key="big/small.bin", UploadId=uid, PartNumber=2, Body=b"b")
    parts = [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="big/small.bin", UploadId=uid, MultipartUpload={"Parts": parts}
        )
    assert error_code(e.value) == ("EntityTooSmall", 400)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="big/small.bin", UploadId=uid, MultipartUpload={"Parts": parts[::-1]}
        )
    assert error_code(e.value) == ("InvalidPartOrder", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key="big/small.bin", UploadId=uid)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="big/small.bin", UploadId=uid, PartNumber=3, Body=b"c")
    assert error_code(e.value) == ("NoSuchUpload", 404)


def test_upload_fileobj_with_a_transfer_config(s3, bucket):
    data = os.urandom(12 * MIB + 7)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=3)
    s3.upload_fileobj(io.BytesIO(data), bucket, "big/transfer.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big/transfer.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-3"')
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big/transfer.bin", out)
    assert out.getvalue() == data


def test_conditional_put(s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="lock/manifest", Body=b"v1", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="lock/manifest", Body=b"v2", IfNoneMatch="*")
    assert error_code(e.value) == ("PreconditionFailed", 412)
    # Compare-and-swap with If-Match.
    second = s3.put_object(Bucket=bucket, Key="lock/manifest", Body=b"v2", IfMatch=first["ETag"])
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="lock/manifest", Body=b"v3", IfMatch=first["ETag"])
    assert error_code(e.value) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="lock/manifest")["Body"].read() == b"v2"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="lock/manifest", IfNoneMatch=second["ETag"])
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_delete_and_delete_objects(s3, bucket):
    for k in ("gc/a", "gc/b", "gc/c"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"z")
    s3.delete_object(Bucket=bucket, Key="gc/a")
    s3.delete_object(Bucket=bucket, Key="gc/never-existed")
    out = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "gc/b"}, {"Key": "gc/c"}, {"Key": "gc/zzz"}]}
    )
    assert sorted(d["Key"] for d in out["Deleted"]) == ["gc/b", "gc/c", "gc/zzz"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="gc/")


def test_presigned_get_with_urllib(s3, bucket):
    s3.put_object(Bucket=bucket, Key="share/p.txt", Body=b"presigned!")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "share/p.txt"}, ExpiresIn=300
    )
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == b"presigned!"
    tampered = url.replace("share/p.txt", "share/q.txt")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(tampered, timeout=30)
    assert e.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in e.value.read()


def test_buckets_list_and_head(s3, bucket):
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names
    s3.head_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="no-such-bucket")
    assert error_code(e.value) == ("NoSuchBucket", 404)


def test_a_token_without_r2_permission_is_denied(emu, bucket):
    token_id, value = emu.mint_token(
        "no r2", account_policy(emu, "Account Settings Read")
    )
    s3 = s3_client(emu, token_id, value)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="site/index.html")
    assert error_code(e.value) == ("AccessDenied", 403)


def test_a_read_token_reads_but_cannot_write(emu, s3, bucket):
    s3.put_object(Bucket=bucket, Key="ro/x", Body=b"ro")
    token_id, value = emu.mint_token("r2 read", account_policy(emu, R2_READ))
    reader = s3_client(emu, token_id, value)
    assert reader.get_object(Bucket=bucket, Key="ro/x")["Body"].read() == b"ro"
    with pytest.raises(ClientError) as e:
        reader.put_object(Bucket=bucket, Key="ro/y", Body=b"no")
    assert error_code(e.value) == ("AccessDenied", 403)


def test_a_bad_secret_and_an_unknown_key(emu, writer, bucket):
    token_id, value = writer
    wrong = s3_client(emu, token_id, value, secret=hashlib.sha256(b"wrong").hexdigest())
    with pytest.raises(ClientError) as e:
        wrong.get_object(Bucket=bucket, Key="site/index.html")
    assert error_code(e.value) == ("SignatureDoesNotMatch", 403)
    # The raw token value is not the secret (the public mistake, docs/cloudflare-api.md §7).
    raw = s3_client(emu, token_id, value, secret=value)
    with pytest.raises(ClientError) as e:
        raw.list_objects_v2(Bucket=bucket)
    assert error_code(e.value) == ("SignatureDoesNotMatch", 403)
    unknown = s3_client(emu, "0" * 32, value)
    with pytest.raises(ClientError) as e:
        unknown.list_objects_v2(Bucket=bucket)
    assert error_code(e.value) == ("InvalidAccessKeyId", 403)
    # The token value as the Access Key ID: R2 checks the length first (docs/cloudflare-api.md §7,
    # medusa PR #10497: "Credential access key has length 40, should be 32").
    value_as_id = s3_client(emu, "a" * 40, value)
    with pytest.raises(ClientError) as e:
        value_as_id.list_objects_v2(Bucket=bucket)
    assert error_code(e.value) == ("InvalidArgument", 400)
    assert "should be 32" in e.value.response["Error"]["Message"]


def test_boto3_default_checksums(emu, writer, bucket):
    """boto3's defaults (request_checksum_calculation="when_supported").

    Over plain http, which the emulator speaks, botocore puts the CRC32 in an
    `x-amz-checksum-crc32` header and signs the payload's SHA-256: no aws-chunked trailer, so the
    emulator accepts it (checksum headers are not checked). Over https, which real R2 is,
    botocore sends `Content-Encoding: aws-chunked` + `x-amz-trailer` with
    `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, which R2 answers 501 NotImplemented
    (docs/cloudflare-api.md §7 "Checksums"); that request is replayed by hand below and is refused
    the same way.
    """
    token_id, value = writer
    defaults = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    s3 = s3_client(emu, token_id, value, config=defaults)
    s3.put_object(Bucket=bucket, Key="checksums/default", Body=b"crc")
    assert s3.get_object(Bucket=bucket, Key="checksums/default")["Body"].read() == b"crc"

    url = f"{emu['R2_S3_ENDPOINT']}/{bucket}/checksums/trailer"
    req = urllib.request.Request(
        url,
        data=b"3\r\ncrc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
        method="PUT",
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Content-Sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "X-Amz-Trailer": "x-amz-checksum-crc32",
            "X-Amz-Decoded-Content-Length": "3",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 501
    assert b"<Code>NotImplemented</Code>" in e.value.read()


# Issue 16 item 7: the strict side of what R2 leaves open (docs/cloudflare-api.md §7), seen by boto3.


def fresh_s3(emu_exports, name="boto-strict"):
    """A bucket and a writer's boto3 client on an emulator started by `emu_with`."""
    status, body = emu_exports.api(
        "POST", f"/accounts/{emu_exports['CLOUDFLARE_ACCOUNT_ID']}/r2/buckets", {"name": name}
    )
    assert status == 200, body
    token_id, value = emu_exports.mint_token("strict writer", account_policy(emu_exports, R2_WRITE))
    return s3_client(emu_exports, token_id, value), name, (token_id, value)


def test_signature_does_not_match_shows_the_canonical_request(emu, writer, bucket):
    """R2's SignatureDoesNotMatch body carries <CanonicalRequest> and <StringToSign> (WWBN/AVideo
    #9667); botocore parses every child of <Error>. The last line is the payload hash the server
    used: boto3 signs the body's real SHA-256 in the header form."""
    token_id, value = writer
    wrong_secret = hashlib.sha256(b"wrong").hexdigest()
    wrong = s3_client(emu, token_id, value, secret=wrong_secret)
    with pytest.raises(ClientError) as e:
        wrong.put_object(Bucket=bucket, Key="sig/k", Body=b"payload")
    err = e.value.response["Error"]
    assert err["Code"] == "SignatureDoesNotMatch"
    assert err["AWSAccessKeyId"] == token_id
    canonical = err["CanonicalRequest"].split("\n")
    assert canonical[0] == "PUT"
    assert canonical[1] == f"/{bucket}/sig/k"
    assert canonical[-1] == hashlib.sha256(b"payload").hexdigest()
    assert "x-amz-content-sha256" in canonical[-2].split(";")
    sts = err["StringToSign"].split("\n")
    assert sts[0] == "AWS4-HMAC-SHA256"
    assert sts[3] == hashlib.sha256(err["CanonicalRequest"].encode()).hexdigest()
    assert len(err["SignatureProvided"]) == 64
    right_secret = hashlib.sha256(value.encode()).hexdigest()
    for text in err.values():
        assert right_secret not in text and wrong_secret not in text


def test_presigned_put_works_and_presigned_post_is_refused(emu, s3, bucket):
    """boto3 presigns without X-Amz-Content-Sha256, so the payload line is UNSIGNED-PAYLOAD and a
    presigned PUT works. Presigned POST (here CreateMultipartUpload) is refused: R2's
    presigned-urls.mdx says POST "is not currently supported"; the emulator's default answer is
    403 SignatureDoesNotMatch."""
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "presigned/put.txt"}, ExpiresIn=300
    )
    req = urllib.request.Request(url, data=b"via a presigned PUT", method="PUT")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    got = s3.get_object(Bucket=bucket, Key="presigned/put.txt")
    assert got["Body"].read() == b"via a presigned PUT"

    url = s3.generate_presigned_url(
        "create_multipart_upload",
        Params={"Bucket": bucket, "Key": "presigned/mp.bin"},
        ExpiresIn=300,
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=30)
    assert e.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in e.value.read()


@pytest.mark.parametrize(
    "answer,status,code",
    [("refuse-401", 401, b"Unauthorized"), ("refuse-501", 501, b"NotImplemented"), ("accept", 200, None)],
)
def test_the_presigned_post_answer_is_a_flag(emu_with, answer, status, code):
    exports = emu_with("--s3-presigned-post", answer)
    s3, bucket, _ = fresh_s3(exports)
    url = s3.generate_presigned_url(
        "create_multipart_upload", Params={"Bucket": bucket, "Key": "mp.bin"}, ExpiresIn=300
    )
    req = urllib.request.Request(url, data=b"", method="POST")
    if status == 200:
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            assert b"<UploadId>" in resp.read()
        return
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == status
    assert b"<Code>" + code + b"</Code>" in e.value.read()


def test_listing_times_have_milliseconds_and_head_has_whole_seconds(s3, bucket):
    """R2 keeps upload times in milliseconds (docs/cloudflare-api.md §7 "Times"): a listing shows the
    fraction, the HTTP Last-Modified of HEAD cannot, so the two are never equal as instants; two
    uploads in a row get different times."""
    s3.put_object(Bucket=bucket, Key="times/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="times/b", Body=b"b")
    url = s3.generate_presigned_url(
        "list_objects_v2", Params={"Bucket": bucket, "Prefix": "times/"}, ExpiresIn=300
    )
    with urllib.request.urlopen(url, timeout=30) as resp:
        xml = resp.read().decode()
    raw = re.findall(r"<LastModified>([^<]+)</LastModified>", xml)
    assert len(raw) == 2
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t) for t in raw), raw
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="times/")["Contents"]
    a, b = listed[0]["LastModified"], listed[1]["LastModified"]
    assert a < b
    head = s3.head_object(Bucket=bucket, Key="times/a")
    assert head["LastModified"] == a.replace(microsecond=0)
    assert head["LastModified"].microsecond == 0


def test_a_lost_conditional_put_is_409_with_the_flag(emu_with):
    """AWS answers 409 ConditionalRequestConflict to a conditional write that lost a race; R2's
    answer is undocumented (cloudflare-docs#32793). `--s3-conflict-409` makes the emulator answer
    409 where it would answer 412."""
    s3, bucket, _ = fresh_s3(emu_with("--s3-conflict-409"))
    s3.put_object(Bucket=bucket, Key="lock", Body=b"v1", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="lock", Body=b"v2", IfNoneMatch="*")
    assert error_code(e.value) == ("ConditionalRequestConflict", 409)
    assert s3.get_object(Bucket=bucket, Key="lock")["Body"].read() == b"v1"


def test_one_write_per_second_per_key_with_the_flag(emu_with):
    """R2: one concurrent write per second to the same key; more gives 429 (10058)."""
    s3, bucket, _ = fresh_s3(emu_with("--s3-write-limit-per-key"))
    s3.put_object(Bucket=bucket, Key="hot", Body=b"1")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="hot", Body=b"2")
    assert error_code(e.value) == ("TooManyRequests", 429)
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    s3.put_object(Bucket=bucket, Key="cold", Body=b"1")


def test_conditions_on_complete_multipart_upload_are_refused(s3, bucket):
    """R2 documents no conditional headers on CompleteMultipartUpload: 501 by default."""
    uid = s3.create_multipart_upload(Bucket=bucket, Key="cond/mp.bin")["UploadId"]
    p1 = s3.upload_part(Bucket=bucket, Key="cond/mp.bin", UploadId=uid, PartNumber=1, Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="cond/mp.bin",
            UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}]},
            IfNoneMatch="*",
        )
    assert error_code(e.value) == ("NotImplemented", 501)
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="cond/mp.bin",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}]},
    )
    assert done["ETag"].endswith('-1"')
