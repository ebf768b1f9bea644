import logging
import logging.config

import orjson
import pytest

from stream.logs import JsonFormatter, logging_config


def test_json_formatter_writes_one_object_per_record() -> None:
    record = logging.LogRecord("rfm.test", logging.WARNING, __file__, 1, "lag %d", (42,), None)
    line = JsonFormatter().format(record)
    entry = orjson.loads(line)
    assert "\n" not in line
    assert entry["level"] == "warning"
    assert entry["logger"] == "rfm.test"
    assert entry["message"] == "lag 42"
    assert entry["time"].endswith("+00:00")


def test_json_formatter_keeps_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = orjson.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]


@pytest.fixture
def restore_root_logger() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_logging_config_is_accepted_by_dictconfig(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.config.dictConfig(logging_config("info", fmt))
    logging.getLogger("rfm.check").info("hello")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    if fmt == "json":
        assert orjson.loads(err)["message"] == "hello"
    else:
        assert err.endswith("rfm.check: hello")
