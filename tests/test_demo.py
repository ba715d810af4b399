"""`zlab demo`: the first lesson headless, printed live, line by line."""

import subprocess
import sys
import threading
import time


def test_demo_prints_the_lesson_live_and_exits_0():
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-u", "-m", "zlab", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []

    def read():
        for line in proc.stdout:
            lines.append((time.monotonic() - start, line.rstrip()))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
    finally:
        proc.kill()
        reader.join(5)
    text = [line for _, line in lines]
    events = [line.split()[2] for line in text if line[:9].strip().replace(".", "").isdigit()]
    assert events.count("HANDSHAKE_SUCCEEDED") >= 4  # pub + sub, then pub + sub2
    assert "DISCONNECTED" in events
    after = events[events.index("DISCONNECTED"):]
    assert after.count("CONNECT_RETRIED") >= 3 and after.count("CLOSED") >= 3
    assert lines[-1][0] - start < 20
    # Live: the DISCONNECTED line arrived well before the summary (the retry cycles took time).
    t_disconnected = next(t for t, line in lines if " DISCONNECTED " in line)
    t_summary = next(t for t, line in lines if line.startswith("3. "))
    assert t_summary - t_disconnected > 0.2
    summary = [line for line in text if line[:3] in ("1. ", "2. ", "3. ")]
    assert len(summary) == 3


def test_demo_rejects_a_bad_cycle_count_in_one_line():
    out = subprocess.run([sys.executable, "-m", "zlab", "demo", "--cycles", "0"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "--cycles must be between 1 and 50" in out.stderr
    assert "Traceback" not in out.stderr
