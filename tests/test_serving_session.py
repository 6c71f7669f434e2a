"""The server's session path (``serving.session_runner``) answers exactly what the loaded signatures answer."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from serving.errors import ServingError
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


def test_numbers_are_converted_to_the_signature_dtype(runner):
    frame = sample_frame(rows=8, seed=1)
    inputs = _columns(frame, "str")
    wider = {**inputs, "price": inputs["price"].astype(np.float64), "category": inputs["category"].astype(np.int32)}
    for key, value in runner.run("serving_default", inputs).items():
        np.testing.assert_array_equal(runner.run("serving_default", wider)[key], value)


def test_servable_signatures_specs_and_op_errors(export):
    servable = Servable("mmoe", 1, export.version_dir, warmup=False)
    assert "__saved_model_init_op" not in servable.signatures
    assert "__saved_model_init_op" in servable.metadata["signature_def"]
    spec = servable.input_specs["serving_default"]["price"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None]
    three = {k: v[:3] for k, v in _columns(sample_frame(rows=8), "str").items()}
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
