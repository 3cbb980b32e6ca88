"""A node script of the tests' harnesses (tests/oidc, tests/webhooks), run on loopback: started,
its stdout read line by line for what it says ("listening", "reloaded"), stopped.

    p = NodeProcess("the OpenID provider", script, config_path, log_path, cwd)
    p.start(timeout)        # returns once the script said "listening"
    p.expect("reloaded", 30, fail_on="reload failed")
    p.send_signal(signal.SIGHUP); p.running; p.log_text(); p.stop()

Its stdin is a pipe held open while it runs: a script that exits when its stdin closes (the
webhook receiver) goes also when the test process is killed, and never holds a port."""

import queue
import signal
import subprocess
import threading
import time


class NodeProcess:
    def __init__(self, what, script, config_path, log_path, cwd):
        self.what = what
        self.args = ["node", script, config_path]
        self.log_path = log_path
        self.cwd = cwd
        self.proc = None
        self._log = None
        self._lines = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout):
        self._log = open(self.log_path, "ab")
        self._lines = queue.Queue()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, cwd=self.cwd, text=True)
        threading.Thread(target=self._read, args=(self.proc, self._lines), daemon=True).start()
        self.expect("listening", timeout)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdin.close()
            self._log.close()
        self.proc = None

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    @staticmethod
    def _read(proc, lines):
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)

    def expect(self, word, timeout, fail_on=None):
        """Waits until the script says word; fails (stopping it) when it exits, says a line
        starting with fail_on, or says nothing of the kind within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"{self.what} did not say {word!r} in {timeout}s:\n"
                                   f"{self.log_text()}")
            if line is None:
                self.proc.wait()
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"{self.what} exited ({code}):\n{self.log_text()}")
            if line == word:
                return
            if fail_on and line.startswith(fail_on):
                raise RuntimeError(line)
