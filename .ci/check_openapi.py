"""Starts `keel serve` on free ports, fetches /openapi.json and validates it as OpenAPI 3.1."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from openapi_spec_validator import validate

binary = os.path.abspath(sys.argv[1])
with tempfile.TemporaryDirectory() as data:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env.update(KEEL_ADDR="127.0.0.1:0", KEEL_METRICS_ADDR="127.0.0.1:0",
               KEEL_DATA_DIR=data, KEEL_LOG_FORMAT="json")
    proc = subprocess.Popen([binary, "serve"], env=env, cwd=data, stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.time() + 30
    while port is None and time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if "keel serving" in line:
            port = json.loads(line)["port"]
    if port is None:
        proc.kill()
        sys.exit("keel did not start")
    try:
        doc = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json"))
        validate(doc)
        assert doc["openapi"].startswith("3.1"), doc["openapi"]
        print(f"OpenAPI {doc['openapi']} valid: {len(doc['paths'])} paths")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
