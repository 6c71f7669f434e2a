"""Helpers shared by the serving tests and the latency benchmark.

- :class:`ServerProcess` starts ``python -m serving serve --port 0 --grpc-port 0`` in a subprocess, reads the ports
  it bound and waits for its "serving <name> version N" line (no ``mmoe_tf`` import here).
- :func:`saved_model_cli_show` reads an export's SignatureDefs with TensorFlow's ``saved_model_cli show --all``.
- :func:`build_test_model` builds a small real MMoE with ``mmoe_tf.build_model`` (inputs float32/string/int64,
  a vocabulary adapted inside the model) and :func:`cached_export` exports it once per directory, so several test
  modules reuse one export.

Example:
    >>> export = cached_export(Path("/tmp/serving-export"))  # doctest: +SKIP
    >>> with ServerProcess(["--base-path", str(export.base_path), "--model-name", "mmoe"]) as server:  # doctest: +SKIP
    ...     requests.get(server.url + "/v1/models/mmoe").json()
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
# the folder this package is imported from (REPO_ROOT; site-packages when installed as mmoe_tf_app.serving)
IMPORT_ROOT = Path(__file__).resolve().parents[__package__.count(".") + 1]
MODEL_NAME = "mmoe"
SCORE_WEIGHTS = {"click": 1.0, "satisfaction": 2.0}


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m serving serve ARGS --port 0 --grpc-port 0`` as a context manager.

    The server binds free ports itself and prints them (``ports rest=N grpc=M``); :attr:`port`, :attr:`url` and
    :attr:`grpc_target` read that line (waiting for it if needed), so no other process can take a port between
    choosing and binding it.

    Attributes:
        port: The REST port.
        url: The REST base URL, ``http://127.0.0.1:<port>``.
        grpc_target: The gRPC address, ``127.0.0.1:<grpc port>`` (``None`` with ``--no-grpc``).

    Args:
        args: Arguments after ``serve`` (``--port 0`` and ``--grpc-port 0`` are added unless given).
        timeout: Seconds to wait for the "serving ... version" line.
        env: Extra environment variables (``PYTHONPATH`` defaults to the repository root).
        cwd: Working directory (``python -m`` puts it first on ``sys.path``).
    """

    def __init__(
        self,
        args: list[str],
        timeout: float = 120.0,
        env: dict[str, str] | None = None,
        cwd: str | Path = REPO_ROOT,
    ) -> None:
        self.cwd = str(cwd)
        self.args = list(args)
        if "--port" not in self.args:
            self.args += ["--port", "0"]
        if "--grpc-port" not in self.args and "--no-grpc" not in self.args:
            self.args += ["--grpc-port", "0"]
        self._ports: tuple[int, int | None] | None = None
        self.timeout = timeout
        self.env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(IMPORT_ROOT), **(env or {})}
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc: subprocess.Popen | None = None

    def bound_ports(self) -> tuple[int, int | None]:
        """``(rest port, grpc port or None)`` from the server's ``ports`` line (waits for it up to ``timeout``)."""
        if self._ports is None:
            if self.proc is None:
                raise RuntimeError("the server has not been started")
            listening = self.wait_for("listening at ", self.timeout)  # printed right after the ports line
            line = next((ln for ln in self.lines if ln.startswith("ports rest=")), None)
            if line is not None:
                fields = dict(item.split("=", 1) for item in line.split()[1:])
                self._ports = int(fields["rest"]), (int(fields["grpc"]) if fields["grpc"].isdigit() else None)
            else:  # a server from before the ports line (e.g. an older tree in a code A/B)
                found = re.search(r"listening at http://\S+?:(\d+)(?: and grpc \S+?:(\d+))?", listening)
                if found is None:
                    raise RuntimeError(f"cannot read the ports from {listening!r}")
                self._ports = int(found[1]), (int(found[2]) if found[2] else None)
        return self._ports

    @property
    def port(self) -> int:
        return self.bound_ports()[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_target(self) -> str | None:
        grpc_port = self.bound_ports()[1]
        return f"127.0.0.1:{grpc_port}" if grpc_port is not None else None

    def start(self, wait: bool = True) -> ServerProcess:
        """Launch the server; with ``wait`` block until it serves a model version.

        Starting a server that already runs does nothing (``with server.start():`` used to launch a second
        process and leave the first one running after the block).
        """
        if self.alive():
            return self
        self._ports, self.lines, self._queue = None, [], queue.Queue()
        cmd = [sys.executable, "-m", __package__, "serve", *self.args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env, cwd=self.cwd
        )
        threading.Thread(target=self._pump, daemon=True).start()
        if wait:
            self.wait_for("serving ", self.timeout)
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        """Wait for an output line containing ``text`` (lines already seen count); ``RuntimeError`` on timeout/exit."""
        for line in list(self.lines):
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"server exited (code {self.proc.wait()}):\n" + "\n".join(self.lines[-20:]))
            if text in line:
                return line.rstrip("\n")
        raise RuntimeError(f"no line containing {text!r} within {timeout}s:\n" + "\n".join(self.lines[-20:]))

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def saved_model_cli_show(version_dir: str | Path, timeout: float = 180.0) -> dict[str, dict[str, Any]]:
    """The ``serve`` MetaGraph's SignatureDefs as ``saved_model_cli show --all`` (shipped with TensorFlow) prints them.

    Runs ``python -m tensorflow.python.tools.saved_model_cli show --dir DIR --all`` (what ``saved_model_cli`` runs)
    and parses its text.

    Returns:
        ``{signature: {"method": method_name, "inputs": {name: (dtype, shape)}, "outputs": {...}}}``, shapes as
        printed, e.g. ``("DT_FLOAT", "(-1)")``.

    Raises:
        RuntimeError: the tool failed or printed no ``serve`` tag-set.
    """
    cmd = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", str(version_dir), "--all"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0 or "MetaGraphDef with tag-set: 'serve'" not in result.stdout:
        raise RuntimeError(f"saved_model_cli show failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    signatures: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    side, tensor = "inputs", None
    for raw in result.stdout.split("MetaGraphDef with tag-set: 'serve'", 1)[1].splitlines():
        line = raw.strip()
        if line.startswith("signature_def['"):
            current = signatures[line.split("'")[1]] = {"method": "", "inputs": {}, "outputs": {}}
        elif line.startswith(("inputs['", "outputs['")) and current:
            side, tensor = line.split("[", 1)[0], line.split("'")[1]
            current[side][tensor] = ["", ""]
        elif line.startswith("dtype: ") and tensor is not None:
            current[side][tensor][0] = line.split(": ", 1)[1]
        elif line.startswith("shape: ") and tensor is not None:
            current[side][tensor][1] = line.split(": ", 1)[1]
        elif line.startswith("Method name is:") and current:
            current["method"], tensor = line.split(":", 1)[1].strip(), None
        elif line.startswith(("The MetaGraph with tag set", "MetaGraphDef with tag-set")):
            break
    for signature in signatures.values():
        for side in ("inputs", "outputs"):
            signature[side] = {name: tuple(info) for name, info in signature[side].items()}
    return signatures


def sample_frame(rows: int = 64, seed: int = 0) -> pd.DataFrame:
    """Raw feature rows for the test model: ``price`` float32 (with a NaN), ``device`` string, ``category`` int64."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "price": rng.lognormal(2.0, 1.0, rows).astype(np.float32),
            "device": rng.choice(["ios", "android", "web", "tv"], rows),
            "category": rng.integers(0, 20, rows).astype(np.int64),
        }
    )
    frame.loc[3, "price"] = np.nan
    frame.loc[5, "device"] = "never-seen-device"
    return frame


def to_instances(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Row-format (``instances``) JSON values of :func:`sample_frame` rows, with the inputs' exact JSON types."""
    return [
        {"price": float(r.price), "device": str(r.device), "category": int(r.category)}
        for r in frame.itertuples(index=False)
    ]


def build_test_model(seed: int = 0) -> Any:
    """A small untrained MMoE (3 experts, click + satisfaction) from ``mmoe_tf.build_model``."""
    import mmoe_tf

    config = mmoe_tf.ModelConfig(
        features=(
            mmoe_tf.FeatureSpec("price", "numeric", default=0.0),
            mmoe_tf.FeatureSpec("device", "categorical", dtype="string", embedding_dim=4, default=""),
            mmoe_tf.FeatureSpec("category", "hashed", dtype="int64", num_bins=16, embedding_dim=4),
        ),
        num_experts=3,
        expert_units=(8,),
        tower_units=(4,),
        seed=seed,
    )
    return mmoe_tf.build_model(config, adapt_data=sample_frame(256, seed=seed + 1), compile=False)


@dataclasses.dataclass
class CachedExport:
    """An exported test model: ``base_path/mmoe/1``, its Keras file, sample rows and Keras predictions."""

    base_path: Path
    version_dir: Path
    keras_path: Path
    samples: pd.DataFrame
    expected: pd.DataFrame
    gates: pd.DataFrame


def cached_export(root: Path, score_weights: dict[str, float] | None = SCORE_WEIGHTS) -> CachedExport:
    """Build and export the test model into ``root`` once (a file lock makes concurrent callers wait).

    Returns:
        Paths and in-process (Keras) predictions; later calls read them back from disk.
    """
    root.mkdir(parents=True, exist_ok=True)
    base = root / "base"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "expected.parquet").exists():
            import mmoe_tf
            from serving.export import export_model

            model = build_test_model()
            samples = sample_frame(64, seed=7)
            export_model(model, base, MODEL_NAME, version=1, sample_features=samples, score_weights=score_weights)
            mmoe_tf.save_model(model, root / "model.keras")
            feats = {
                "price": samples["price"].to_numpy(np.float32),
                "device": samples["device"].to_numpy(object),
                "category": samples["category"].to_numpy(np.int64),
            }
            outputs = model(feats, training=False)
            expected = pd.DataFrame({k: np.asarray(v)[:, 0] for k, v in outputs.items()})
            gate_out = mmoe_tf.gate_model(model)(feats, training=False)
            gates = pd.DataFrame(
                {f"gate_{k}_{i}": np.asarray(v)[:, i] for k, v in gate_out.items() for i in range(v.shape[1])}
            )
            samples.to_parquet(root / "samples.parquet")
            gates.to_parquet(root / "gates.parquet")
            expected.to_parquet(root / "expected.parquet")
    return CachedExport(
        base_path=base,
        version_dir=base / MODEL_NAME / "1",
        keras_path=root / "model.keras",
        samples=pd.read_parquet(root / "samples.parquet"),
        expected=pd.read_parquet(root / "expected.parquet"),
        gates=pd.read_parquet(root / "gates.parquet"),
    )
