"""Calls the ops daemon through the official Alibaba Cloud ECI SDK.

Reads one JSON object on stdin:
  {"endpoint": "127.0.0.1:PORT", "ak": "...", "secret": "...", "region": "...",
   "calls": [{"action": "create"|"describe", "args": {SDK request fields}}]}
and prints a JSON list with, per call, either {"ok": <response body>} or
{"code", "status", "message"} from the SDK's exception.
"""
import json
import sys

from alibabacloud_eci20180808 import models
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi.models import Config

spec = json.load(sys.stdin)
client = Client(Config(
    access_key_id=spec["ak"],
    access_key_secret=spec["secret"],
    endpoint=spec["endpoint"],
    protocol="http",
    region_id=spec["region"],
))
results = []
for call in spec["calls"]:
    try:
        if call["action"] == "create":
            body = client.create_instance_ops_task(models.CreateInstanceOpsTaskRequest(**call["args"])).body
        elif call["action"] == "describe":
            body = client.describe_instance_ops_records(models.DescribeInstanceOpsRecordsRequest(**call["args"])).body
        else:
            raise ValueError(call["action"])
        results.append({"ok": body.to_map()})
    except Exception as e:  # the SDK raises TeaException subclasses
        results.append({
            "code": getattr(e, "code", type(e).__name__),
            "status": getattr(e, "statusCode", None),
            "message": getattr(e, "message", str(e)),
        })
print(json.dumps(results))
