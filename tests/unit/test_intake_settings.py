"""The batch intake is wired into faust (the worker tests run it against a real broker)."""

from stream.intake import BatchApp, BatchConsumer, FetchWaitConsumerThread


async def test_app_consumer_takes_batches_and_the_fetch_wait_setting() -> None:
    app = BatchApp("intake-test", broker="kafka://127.0.0.1:1", fetch_max_wait_ms=37)
    consumer = app.consumer
    assert isinstance(consumer, BatchConsumer)
    thread = consumer._thread
    assert isinstance(thread, FetchWaitConsumerThread)
    aiokafka_consumer = thread._create_worker_consumer(consumer.transport)
    assert aiokafka_consumer._fetch_max_wait_ms == 37


async def test_a_batch_topic_is_subscribed_without_an_agent() -> None:
    app = BatchApp("intake-test", broker="kafka://127.0.0.1:1")
    topic = app.topic("orders", key_serializer="raw", value_serializer="raw")

    async def handle(records: object) -> None:
        raise AssertionError("not called here")

    app.batch_topic(topic, handle)
    assert topic in app.topics
    assert app.batch_handlers == {"orders": handle}
    assert not app.agents
