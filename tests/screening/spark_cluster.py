"""A real Spark standalone cluster on 127.0.0.1 for the tests: one master and one worker, each in
its own JVM, started from the pyspark distribution (``bin/spark-class``) and stopped afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


class StandaloneCluster:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.port, self.ui = free_port(), free_port()
        self.worker_ui = free_port()
        self.procs: list[subprocess.Popen] = []
        self.logs: list = []
        self.env = dict(os.environ, SPARK_HOME=str(spark_home()), SPARK_LOCAL_IP="127.0.0.1",
                        SPARK_MASTER_HOST="127.0.0.1", PYSPARK_PYTHON=sys.executable,
                        SPARK_NO_DAEMONIZE="1", SPARK_LOG_DIR=str(log_dir), SPARK_WORKER_DIR=str(log_dir / "work"))

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def _start(self, name: str, *args: str) -> None:
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        log = (self.log_dir / f"{name}.log").open("wb")
        self.logs.append(log)
        self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}/json/", timeout=5) as r:  # loopback only
            return json.loads(r.read())

    def start(self, timeout: float = 180.0) -> StandaloneCluster:
        self._start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(self.ui))
        self._start("worker", "org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1",
                    "--cores", "2", "--memory", "1g", "--webui-port", str(self.worker_ui))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            try:
                if any(w.get("state") == "ALIVE" for w in self.state().get("workers", [])):
                    return self
            except OSError:
                pass
            time.sleep(1)
        logs = "\n".join((self.log_dir / f"{n}.log").read_text(errors="replace")[-2000:] for n in ("master", "worker"))
        self.stop()
        raise RuntimeError(f"the Spark standalone cluster did not start:\n{logs}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)  # the process group this fixture started
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        self.procs.clear()
        for log in self.logs:
            log.close()
        self.logs.clear()
