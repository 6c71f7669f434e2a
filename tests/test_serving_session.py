"""The server's session path (``serving.session_runner``) answers exactly what the loaded signatures answer."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tensorflow as tf

from serving.errors import RequestError, ServingError
from serving.model_store import Servable
from serving.session_runner import SessionRunner
from serving.testing import sample_frame


@pytest.fixture(scope="module")
def runner(export):
    runner = SessionRunner(export.version_dir)
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def loaded(export):
    return tf.saved_model.load(str(export.version_dir))


def _columns(frame, device_as: str):
    devices = frame["device"].to_numpy()
    if device_as == "bytes":
        devices = np.array([d.encode() for d in devices], dtype=object)
    elif device_as == "unicode":
        devices = devices.astype(str)  # numpy '<U' array
    return {
        "price": frame["price"].to_numpy(np.float32),
        "device": devices,  # 'str' leaves the object array of Python str as pandas gives it
        "category": frame["category"].to_numpy(np.int64),
    }


@pytest.mark.parametrize("device_as", ["str", "bytes", "unicode"])
def test_every_signature_matches_the_loaded_signature_exactly(runner, loaded, device_as):
    inputs = _columns(sample_frame(rows=33, seed=4), device_as)
    for name, signature in loaded.signatures.items():
        specs = signature.structured_input_signature[1]
        expected = signature(**{k: tf.constant(inputs[k], dtype=s.dtype) for k, s in specs.items()})
        got = runner.run(name, {k: inputs[k] for k in specs})
        assert sorted(got) == sorted(expected), name
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value.numpy(), err_msg=f"{name}/{key}")
            assert got[key].dtype == value.numpy().dtype


def test_a_call_skips_the_python_session_run(export, monkeypatch):
    """Each call goes straight to the C-API callable: Session.run's per-call Python feed handling cost ≈ 350 µs."""
    runner = SessionRunner(export.version_dir)
    try:
        inputs = _columns(sample_frame(rows=5, seed=2), "str")
        expected = runner.run("serving_default", inputs)

        def no_run(*args, **kwargs):
            raise AssertionError("Session.run called per request")

        monkeypatch.setattr(tf.compat.v1.Session, "run", no_run)
        for key, value in runner.run("serving_default", inputs).items():
            np.testing.assert_array_equal(value, expected[key])
    finally:
        runner.close()


def test_numbers_are_converted_to_the_signature_dtype(runner):
    frame = sample_frame(rows=8, seed=1)
    inputs = _columns(frame, "str")
    wider = {**inputs, "price": inputs["price"].astype(np.float64), "category": inputs["category"].astype(np.int32)}
    for key, value in runner.run("serving_default", inputs).items():
        np.testing.assert_array_equal(runner.run("serving_default", wider)[key], value)


def test_caller_thread_sessions_answer_the_same_from_concurrent_threads(runner, export):
    """inter_op_threads=-1 (the server's default) runs every op in the calling thread: same numbers, thread-safe."""
    from concurrent.futures import ThreadPoolExecutor

    inline = SessionRunner(export.version_dir, intra_op_threads=1, inter_op_threads=-1)
    try:
        batches = [_columns(sample_frame(rows=rows, seed=rows), "str") for rows in (6, 7, 64, 7, 6, 64)]
        with ThreadPoolExecutor(max_workers=3) as pool:
            answers = list(pool.map(lambda cols: inline.run("serving_default", cols), batches))
        for cols, got in zip(batches, answers, strict=True):
            expected = runner.run("serving_default", cols)
            assert sorted(got) == sorted(expected)
            for key, value in expected.items():
                np.testing.assert_array_equal(got[key], value, err_msg=key)
    finally:
        inline.close()


def test_server_config_thread_counts_are_checked():
    from serving.server_config import ServerConfig

    assert ServerConfig().inter_op_threads == -1 and ServerConfig().intra_op_threads == 1
    with pytest.raises(ValueError, match="'inter_op_threads' must be >= -1, got -2"):
        ServerConfig(inter_op_threads=-2)
    with pytest.raises(ValueError, match="'intra_op_threads' must be >= 0, got -1"):
        ServerConfig(intra_op_threads=-1)


@pytest.mark.parametrize("dims", [None, (), (None,), (None, 3), (2, None), (2, 3)])
@pytest.mark.parametrize("shape", [(), (2,), (5,), (2, 3), (5, 3), (2, 4), (2, 3, 1)])
def test_shape_fits_answers_as_tensorshape_compatibility(dims, shape):
    from serving.model_store import shape_fits

    declared = tf.TensorShape(None if dims is None else list(dims))
    assert shape_fits(dims, shape) == declared.is_compatible_with(shape)


def test_servable_signatures_specs_and_op_errors(export):
    servable = Servable("mmoe", 1, export.version_dir, warmup=False)
    assert "__saved_model_init_op" not in servable.signatures
    assert "__saved_model_init_op" in servable.metadata["signature_def"]
    spec = servable.input_specs["serving_default"]["price"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None]
    three = {k: v[:3] for k, v in _columns(sample_frame(rows=8), "str").items()}
    servable.check_shapes("serving_default", three)
    for shape in ([3, 1], []):
        with pytest.raises(RequestError, match=re.escape(f"Input 'price' has shape {shape} but signature")):
            servable.check_shapes("serving_default", {**three, "price": np.zeros(shape, np.float32)})
    bad = {**three, "category": np.array([1, 2], np.int64)}  # 2 rows against 3
    with pytest.raises(ServingError) as caught:
        servable.run("serving_default", bad, validate=False)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert str(caught.value).startswith("ConcatOp : Dimension 0 in both shapes must be equal"), str(caught.value)


def test_server_process_starts_once_and_stops_at_the_end_of_its_block(export):
    from serving.testing import MODEL_NAME, ServerProcess

    server = ServerProcess(["--base-path", str(export.base_path), "--model-name", MODEL_NAME, "--no-grpc"])
    with server.start() as same:  # start() then __enter__: still one process
        first = server.proc.pid
        assert same is server and server.start().proc.pid == first
    assert not server.alive()
