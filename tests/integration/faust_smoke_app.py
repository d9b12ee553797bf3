"""A tiny Faust app for tests/integration/test_kafka.py, run as a worker in a subprocess.

It forwards every record of one topic to another and counts records per key in a Table,
so starting it exercises what breaks Faust on new brokers: the assignor leader topic, the
table's changelog topic (both created by Faust itself over aiokafka) and recovery. It is
the processors' `App` (plain `faust.App` with two consumer fixes, processors/runtime/faustapp.py):
a restart with a table to restore is where plain Faust drops records (see there).
Settings come from the environment because `app.main()` owns the command line.
"""

from __future__ import annotations

import os

import faust

from processors.runtime.faustapp import App

app = App(
    os.environ["SMOKE_APP_ID"],
    broker=f"kafka://{os.environ['SMOKE_BOOTSTRAP']}",
    store="memory://",
    datadir=os.environ["SMOKE_DATADIR"],
    web_enabled=False,
    topic_partitions=1,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(os.environ["SMOKE_SOURCE"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["SMOKE_SINK"], key_serializer="raw", value_serializer="raw")
counts = app.Table("counts", default=int, partitions=1)


@app.agent(source)
async def forward(stream: faust.StreamT[bytes]) -> None:
    async for key, value in stream.items():
        counts[key.decode()] += 1
        await sink.send(key=key, value=value + b"#" + str(counts[key.decode()]).encode())


if __name__ == "__main__":
    app.main()
