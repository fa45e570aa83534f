#!/usr/bin/python3
"""Runs EC2 calls with boto3 (Debian's python3-boto3) and prints one JSON line per call.

The test suites use it to drive vnet-ec2-api (and moto, for the differential test) as a user's program would:
the response is parsed by botocore from the XML the server sent, and errors are botocore's ClientError.

stdin: {"endpoint": URL, "key": ID, "secret": S, "region": R, "verify": false or a CA file,
        "skew": seconds to shift the client's clock (default 0),
        "calls": [{"op": "create_security_group", "args": {...}, "save": {"name": "GroupId"}}]}
A string "$name" in args is replaced by what an earlier call saved under that name (a top-level key of its
response). Output per call: {"op", "ok": true, "result": {...}} or {"op", "ok": false, "code", "status", "message"}.
"""
import datetime
import json
import sys

import boto3
import botocore.auth
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError


def shift_clock(seconds):
    """Signs as if the client's clock were off by `seconds` (for RequestExpired)."""
    real = datetime.datetime
    real_timezone, real_timedelta = datetime.timezone, datetime.timedelta
    delta = datetime.timedelta(seconds=seconds)

    class Shifted(real):
        @classmethod
        def utcnow(cls):
            return real.utcnow() + delta

    class Module:
        datetime = Shifted
        timezone = real_timezone
        timedelta = real_timedelta

    # Debian's botocore signs with AWS CRT's signer when awscrt is installed (awscli brings it), else its own.
    botocore.auth.datetime = Module
    try:
        from botocore.crt import auth as crt_auth
        crt_auth.datetime = Module
    except ImportError:
        pass


def substitute(value, saved):
    if isinstance(value, str) and value.startswith("$") and value[1:] in saved:
        return saved[value[1:]]
    if isinstance(value, dict):
        return {k: substitute(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, saved) for v in value]
    return value


def main():
    spec = json.load(sys.stdin)
    if spec.get("skew"):
        shift_clock(spec["skew"])
    client = boto3.client(
        "ec2", endpoint_url=spec["endpoint"], region_name=spec.get("region", "us-east-1"),
        aws_access_key_id=spec["key"], aws_secret_access_key=spec["secret"], verify=spec.get("verify", False),
        config=Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=30))
    saved = {}
    for call in spec["calls"]:
        op = call["op"]
        try:
            response = getattr(client, op)(**substitute(call.get("args", {}), saved))
            response.pop("ResponseMetadata", None)
            for name, key in call.get("save", {}).items():
                saved[name] = response[key]
            line = {"op": op, "ok": True, "result": response}
        except ClientError as error:
            line = {"op": op, "ok": False, "code": error.response["Error"]["Code"],
                    "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
                    "message": error.response["Error"].get("Message", "")}
        except (ConnectionClosedError, EndpointConnectionError) as error:
            # The server closed the connection without an answer (a gateway over its connection limit).
            line = {"op": op, "ok": False, "code": "ConnectionClosed", "status": 0, "message": str(error)}
        print(json.dumps(line, default=str), flush=True)


if __name__ == "__main__":
    main()
