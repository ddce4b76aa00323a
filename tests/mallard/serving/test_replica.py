"""`python -m mallard.serving.replica` as a real process: protocol, errors, micro-batching."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from mallard.serving.wire import decode_table, encode_table
from tests.helpers.servers import free_port, wait_for
from tests.mallard.serving.toy import save_toy_model


def _start(model_dir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [sys.executable, "-m", "mallard.serving.replica", "--model-dir", str(model_dir), "--port", str(port), *extra]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return process, port


def _http(port: int, raw: bytes, *, responses: int = 1) -> list[tuple[int, bytes]]:
    """Send raw bytes on one connection; read `responses` HTTP responses."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        buffer, out = b"", list[tuple[int, bytes]]()
        while len(out) < responses:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                assert chunk, "the replica closed the connection early"
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(
                int(v) for k, _, v in (line.partition(":") for line in lines[1:]) if k.lower() == "content-length"
            )
            while len(rest) < length:
                rest += sock.recv(65536)
            out.append((int(lines[0].split()[1]), rest[:length]))
            buffer = rest[length:]
        return out


def _post(body: bytes, *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"POST /predict HTTP/1.1\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    model_dir = save_toy_model(tmp_path_factory.mktemp("toy"), delay=0.02)
    process, port = _start(model_dir)
    try:
        wait_for(lambda: _http(port, b"GET /ready HTTP/1.1\r\n\r\n")[0][0] == 200, timeout=60, what="replica ready")
        yield port
    finally:
        process.terminate()
        assert process.wait(10) == 0  # SIGTERM is a clean stop


def test_predict_answers_arrow_and_keeps_the_connection_for_pipelined_requests(replica: int) -> None:
    one, two = encode_table(pa.table({"x": [1.0, 2.0]})), encode_table(pa.table({"x": [5.0]}))
    answers = _http(replica, _post(one) + _post(two), responses=2)
    assert [status for status, _ in answers] == [200, 200]
    assert decode_table(answers[0][1]).column("y").to_pylist() == [2.0, 4.0]
    assert decode_table(answers[1][1]).column("y").to_pylist() == [10.0]


def test_bad_requests_get_clear_errors_and_the_replica_stays_healthy(replica: int) -> None:
    [(status, body)] = _http(replica, _post(b"this is not arrow"))
    assert status == 400 and json.loads(body)["code"] == "malformed_arrow"
    [(status, body)] = _http(replica, b"GET /nowhere HTTP/1.1\r\n\r\n")
    assert status == 404
    [(status, body)] = _http(replica, b"GET /predict HTTP/1.1\r\n\r\n")
    assert status == 405
    [(status, body)] = _http(replica, b"POST /predict HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n")
    assert status == 413 and "at most" in json.loads(body)["message"]
    [(status, body)] = _http(replica, _post(encode_table(pa.table({"x": [-1.0]}))))
    assert status == 500 and json.loads(body) == {
        "code": "model_failed",
        "message": "predict() raised ValueError: x = -1 is not allowed",
    }
    [(status, body)] = _http(replica, _post(encode_table(pa.table({"x": [3.0]})), close=True))
    assert status == 200 and decode_table(body).column("y").to_pylist() == [6.0]


async def test_concurrent_requests_are_predicted_together_and_one_bad_request_fails_alone(replica: int) -> None:
    async def send(x: float) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", replica)
        writer.write(_post(encode_table(pa.table({"x": [x]}))))
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length"))
        body = await reader.readexactly(length)
        writer.close()
        return int(lines[0].split()[1]), body

    stats_before = json.loads(_http(replica, b"GET /stats HTTP/1.1\r\n\r\n")[0][1])
    values = [float(i) for i in range(30)] + [-1.0]
    answers = await asyncio.gather(*(send(x) for x in values))
    stats = json.loads(_http(replica, b"GET /stats HTTP/1.1\r\n\r\n")[0][1])

    for x, (status, body) in zip(values, answers, strict=True):
        if x == -1.0:
            assert status == 500 and b"x = -1" in body
        else:
            assert status == 200 and decode_table(body).column("y").to_pylist() == [2 * x]
    assert stats["requests"] - stats_before["requests"] == 31
    # 31 requests against a 20 ms predict arrive while earlier batches run: far fewer batched calls
    # (each failed batch is retried request by request, which adds calls but still far below 31 + 31).
    assert stats["largest_batch"] > 1


def test_a_model_that_cannot_load_exits_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    process, _port = _start(tmp_path / "model")
    assert process.wait(30) == 3
    assert b"cannot load the model" in process.stderr.read()  # type: ignore[union-attr]
