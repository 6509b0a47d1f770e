"""A minimal Faust app for the table test: counts events per key in a RocksDB-backed table."""

import os

import faust

app = faust.App(
    os.environ["COUNT_APP_ID"],
    broker="kafka://" + os.environ["COUNT_BOOTSTRAP"],
    store="rocksdb://",
    datadir=os.environ["COUNT_DATADIR"],
    topic_partitions=4,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
)
source = app.topic(os.environ["COUNT_SOURCE"], key_type=bytes, value_type=bytes, key_serializer="raw",
                   value_serializer="raw")
output = app.topic(os.environ["COUNT_OUTPUT"], key_type=bytes, value_type=bytes, key_serializer="raw",
                   value_serializer="raw")
counts = app.Table("counts", default=int, partitions=4)


@app.agent(source)
async def count(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        key = event.key.decode()
        counts[key] += 1
        await output.send(key=event.key, value=str(counts[key]).encode())
